"""``/embeddings``: the server's local embedding models and the routed backends' ones."""
