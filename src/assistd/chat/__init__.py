"""``/chat/completions``: chat calls passed on to the routed model backend."""
