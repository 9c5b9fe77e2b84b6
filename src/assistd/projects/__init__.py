"""Projects and API keys."""
