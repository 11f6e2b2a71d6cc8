from __future__ import annotations

import pytest

from tests.fixtures.tiny_model import TOKENIZER_DIR, load_test_tokenizer, make_tiny_model


@pytest.fixture(scope="session")
def tokenizer_dir():
    return TOKENIZER_DIR


@pytest.fixture(scope="session")
def test_tokenizer():
    return load_test_tokenizer()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A 2-layer random Qwen2 with the test tokenizer, saved once per test session. Treat it as read-only."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny_model"))
