"""The sandbox tests' fixtures (defined with their helpers in tests/support/sandboxes.py)."""

from tests.support.sandboxes import engine, sandboxes

__all__ = ["engine", "sandboxes"]
