"""LLM clients behind one protocol: an async OpenAI-compatible HTTP client and a local Hugging Face backend.

An engine: it knows nothing of the pipeline, problems or the sandbox. Importing it does not import torch;
a local model loads torch and transformers when it is first used. `open_chat_model(name, LLMOptions(...))`
gives any registered backend as a `ChatModel`.
"""

from codeflow.llm.local import LocalChatModel
from codeflow.llm.openai_client import OpenAIClient
from codeflow.llm.registry import BACKENDS, Backend, LLMOptions, open_chat_model, register_backend
from codeflow.llm.retry import backoff_delay, is_retryable_status, parse_retry_after
from codeflow.llm.transformers_backend import TransformersBackend
from codeflow.llm.types import ERROR_KINDS, ChatModel, LLMError, LLMResponse, cut_at_stop, error_examples

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
