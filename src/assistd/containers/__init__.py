"""Containers: code_interpreter sandbox sessions of the Responses API, with their files."""
