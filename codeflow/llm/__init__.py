"""LLM clients: an async OpenAI-compatible HTTP client and a local Hugging Face backend.

An engine: it knows nothing of the pipeline, problems or the sandbox. Importing it does not import torch;
`TransformersBackend` loads torch and transformers when it is built.
"""

from codeflow.llm.openai_client import OpenAIClient
from codeflow.llm.retry import backoff_delay, is_retryable_status, parse_retry_after
from codeflow.llm.transformers_backend import TransformersBackend
from codeflow.llm.types import ERROR_KINDS, LLMError, LLMResponse

__all__ = [
    "ERROR_KINDS",
    "LLMError",
    "LLMResponse",
    "OpenAIClient",
    "TransformersBackend",
    "backoff_delay",
    "is_retryable_status",
    "parse_retry_after",
]
