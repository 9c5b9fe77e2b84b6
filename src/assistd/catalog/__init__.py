"""``/models``: the chat models the server routes and its embedding models."""
