"""Isolated execution of untrusted Python code against tests, with structured results."""

from sandbox.core import Sandbox
from sandbox.types import Job, Limits, Result

__all__ = ["Sandbox", "Limits", "Job", "Result"]
