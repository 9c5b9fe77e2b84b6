"""Runs and run steps."""
