"""LLM clients behind one protocol: an async OpenAI-compatible HTTP client and a local Hugging Face backend.

An engine: it knows nothing of the pipeline, problems or the sandbox. Importing it imports neither torch nor
httpx: each client is loaded on first use (`codeflow.llm.OpenAIClient`), and a local model loads torch and
transformers when it is first called. `open_chat_model(name, LLMOptions(...))` gives any registered backend
as a `ChatModel`.
"""

from __future__ import annotations

import importlib
from typing import Any

from codeflow.llm.registry import BACKENDS, Backend, LLMOptions, open_chat_model, register_backend
from codeflow.llm.retry import backoff_delay, is_retryable_status, parse_retry_after
from codeflow.llm.types import ERROR_KINDS, ChatModel, LLMError, LLMResponse, cut_at_stop, error_examples

_LAZY = {
    "OpenAIClient": "codeflow.llm.openai_client",
    "LocalChatModel": "codeflow.llm.local",
    "TransformersBackend": "codeflow.llm.transformers_backend",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'codeflow.llm' has no attribute {name!r}")


__all__ = [
    "BACKENDS",
    "ERROR_KINDS",
    "Backend",
    "ChatModel",
    "LLMError",
    "LLMOptions",
    "LLMResponse",
    "LocalChatModel",
    "OpenAIClient",
    "TransformersBackend",
    "backoff_delay",
    "cut_at_stop",
    "error_examples",
    "is_retryable_status",
    "open_chat_model",
    "parse_retry_after",
    "register_backend",
]
