"""Isolated execution of untrusted Python code against tests, with structured results."""
