"""Shared data and helpers for the sandbox tests."""
