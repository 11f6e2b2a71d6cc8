"""Focal (Target-)DPO: a lean PyTorch trainer whose loss penalises only the changed tokens of rejected code."""

__version__ = "0.1.0"
