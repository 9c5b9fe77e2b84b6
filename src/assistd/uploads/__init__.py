"""Uploads: a large file sent in parts (``/uploads``), assembled into a file."""
