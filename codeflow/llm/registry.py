"""The backends a command can name (`--llm` / `--backend`) and the options that configure them, declared once.

    options = LLMOptions(model="Qwen/Qwen2.5-Coder-7B-Instruct", base_url="http://localhost:8000/v1")
    model = open_chat_model("openai", options)        # a ChatModel
    answer = await model.chat([{"role": "user", "content": "Say hi"}], max_tokens=16)

A new backend is one `register_backend(Backend(...))` with a function that builds a `ChatModel` from
`LLMOptions`; `codeflow build` and `focal-dpo eval` then offer it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from codeflow.cli import option
from codeflow.llm.types import TOKEN_PARAMS, ChatModel


def json_object(text: str) -> dict:
    """argparse type for `--extra-body`: a JSON object."""
    import argparse

    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e.msg} at column {e.colno}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object such as '{{\"top_p\": 0.95}}', got {text!r}")
    return value


@dataclass(kw_only=True)
class LLMOptions:
    """How to reach and drive a model; the same flags on `codeflow build` and `focal-dpo eval`."""

    model: str = option(
        "",
        "the model: its name at the server (openai; transformers serve names it by the path it loaded), "
        "or a local directory / cached hub name (transformers)",
    )
    base_url: str = option("http://localhost:8000/v1", "OpenAI-compatible endpoint (openai)", metavar="URL")
    api_key_env: str = option(
        "OPENAI_API_KEY", "environment variable holding the API key (openai; unset or empty: no key sent)"
    )
    concurrency: int = option(8, "calls in flight at once (openai)", type=int, metavar="N")
    request_timeout_s: float = option(
        120.0, "seconds per HTTP request, connect to last byte (openai)", flag="--request-timeout", type=float
    )
    max_retries: int = option(
        6, "retries of a failed request (429, 5xx, timeouts, bad bodies) after the first (openai)", type=int
    )
    retry_connect_s: float = option(
        600.0,
        "seconds to keep retrying a server that answered before and then became unreachable, to outlive a "
        "restart (openai)",
        flag="--retry-connect",
        type=float,
        metavar="S",
    )
    rpm: float | None = option(None, "client-side limit on requests per minute (openai)", type=float)
    token_param: str = option(
        "max_tokens",
        "name of the length limit in chat requests; OpenAI's newer models want max_completion_tokens "
        "(/completions always gets max_tokens)",
        choices=TOKEN_PARAMS,
    )
    extra_body: dict = option(
        help="JSON object merged into every request body (openai), e.g. '{\"top_p\": 0.95}'",
        type=json_object,
        metavar="JSON",
        default_factory=dict,
    )
    device: str | None = option(None, "device for a local model (transformers; default: cuda when available)")
    dtype: str = option("auto", "dtype for a local model (transformers): auto, bfloat16, float16, float32")


@dataclass(frozen=True)
class Backend:
    name: str
    summary: str  # one line for --help
    open: Callable[[LLMOptions, int], ChatModel]  # (options, batch_size) -> ChatModel


def _open_openai(options: LLMOptions, batch_size: int) -> ChatModel:
    from codeflow.llm.openai_client import OpenAIClient

    return OpenAIClient(
        options.base_url,
        options.model,
        api_key_env=options.api_key_env,
        concurrency=options.concurrency,
        timeout_s=options.request_timeout_s,
        max_retries=options.max_retries,
        rpm=options.rpm,
        retry_connect_s=options.retry_connect_s,
        token_param=options.token_param,
        extra_body=options.extra_body,
    )


def _open_transformers(options: LLMOptions, batch_size: int) -> ChatModel:
    from codeflow.llm.local import LocalChatModel

    return LocalChatModel(options.model, batch_size=batch_size, device=options.device, dtype=options.dtype)


BACKENDS: dict[str, Backend] = {}


def register_backend(backend: Backend) -> None:
    BACKENDS[backend.name] = backend


register_backend(
    Backend(
        "openai",
        "any OpenAI-compatible server (vLLM, SGLang, llama.cpp, Ollama, transformers serve, OpenAI) at --base-url",
        _open_openai,
    )
)
register_backend(
    Backend(
        "transformers",
        "a local Hugging Face model (--model DIR or a cached hub name), batched",
        _open_transformers,
    )
)


def backend_summaries(extra: dict[str, str] | None = None) -> str:
    """`name: summary; ...` for a --llm / --backend help text."""
    entries = dict(extra or {}) | {name: b.summary for name, b in BACKENDS.items()}
    return "; ".join(f"{name}: {summary}" for name, summary in entries.items())


def open_chat_model(name: str, options: LLMOptions, *, batch_size: int = 16) -> ChatModel:
    """The registered backend `name`, configured by `options`. ValueError names the choices."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")
    if not options.model:
        raise ValueError(f"the {name} backend needs --model")
    return BACKENDS[name].open(options, batch_size)
