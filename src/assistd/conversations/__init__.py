"""Conversations: ordered Responses API items, the successor of threads and messages."""
