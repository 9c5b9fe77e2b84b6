"""Messages of a thread."""
