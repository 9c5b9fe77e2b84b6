"""Model backends (chat completions through the openai SDK)."""
