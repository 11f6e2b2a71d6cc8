"""Isolated execution of untrusted Python code against tests, with structured results."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sandbox.types import Job, Limits, Result

if TYPE_CHECKING:
    from sandbox.pool import Sandbox

__all__ = ["Sandbox", "Limits", "Job", "Result"]


def __getattr__(name: str) -> object:
    # Imported on first use: the workers import this package too, and the host side (subprocess, thread
    # pools) would only make every forked job bigger and slower to start.
    if name == "Sandbox":
        from sandbox.pool import Sandbox

        return Sandbox
    raise AttributeError(f"module 'sandbox' has no attribute {name!r}")
