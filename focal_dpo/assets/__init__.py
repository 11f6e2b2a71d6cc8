"""Package data: the small byte-level BPE tokenizer (4,096 tokens, Qwen2-style, trained on the Python
standard library by tests/fixtures/make_tokenizer.py) that `focal-dpo tiny-model` puts beside a tiny model."""

from pathlib import Path

TOKENIZER_DIR = Path(__file__).parent
