"""The Responses API: responses executed by the run engine, streamed in their own events."""
