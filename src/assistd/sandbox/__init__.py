"""The code_interpreter sandbox."""
