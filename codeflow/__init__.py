"""CodeFlow: build preference pairs from a model's own bug fixes (generate -> sandbox -> refine -> pair -> diff)."""

__version__ = "0.1.0"
