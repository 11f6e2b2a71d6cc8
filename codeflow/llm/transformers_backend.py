"""A local Hugging Face causal LM as a batched generation backend (small models on one machine).

torch and transformers are imported when a backend is built, never when `codeflow.llm` is imported.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from codeflow.llm.types import LLMResponse

# loggers that print at import whatever the run does (torchao's missing CUDA kernels, torch's pytree notices);
# transformers imports torchao when it is installed
NOISY_LOGGERS = ("torchao", "torch.utils._pytree")


def quiet_import_notices() -> None:
    """Silence the import-time notices of torch's optional libraries (set before they are imported)."""
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


quiet_import_notices()


class ModelLoadError(ValueError):
    """A model directory or name that transformers cannot load; the message names it."""


class TransformersBackend:
    """Batched generation with a local model (a directory or a hub name already in the local cache).

    Prompts are sorted by length and generated `batch_size` at a time with left padding; greedy when
    temperature == 0, plain temperature sampling otherwise (no top-k/top-p), seeded with `seed` through
    torch's global generator. Each answer is cut at the first stop string; a batch ends as soon as every
    row has produced a stop string or an end-of-sequence token. `finish_reason` is "stop" for either and
    "length" when `max_new_tokens` ran out first.

    `eos_token_ids` (from the model's generation config and the tokenizer) may be extended, for example
    with the id of a chat model's end-of-turn token when its config does not list it.
    """

    def __init__(self, model: str, *, batch_size: int = 16, device: str | None = None, dtype: str = "auto"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.model_name = str(model)
        self.batch_size = batch_size
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if dtype != "auto" and not isinstance(getattr(torch, dtype, None), torch.dtype):
            raise ValueError(f"dtype must be 'auto' or a torch dtype name such as 'bfloat16', got {dtype!r}")
        if self.model_name.startswith(("/", ".", "~")) and not Path(self.model_name).expanduser().exists():
            raise ModelLoadError(
                f"{self.model_name}: no such model directory (give a saved model or a hub name)"
            )
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.model_name)
            self.model = AutoModelForCausalLM.from_pretrained(
                self.model_name, dtype="auto" if dtype == "auto" else getattr(torch, dtype)
            )
        except (OSError, ValueError) as e:  # a wrong path or name: transformers' message, on one line
            first = " ".join(str(e).split())[:300]
            raise ModelLoadError(f"{self.model_name}: cannot load the model ({first})") from None
        self.model.to(self.device).eval()
        self.eos_token_ids = _eos_ids(self.model.generation_config.eos_token_id, self.tokenizer.eos_token_id)
        if not self.eos_token_ids:
            raise ValueError(
                f"{self.model_name}: neither the generation config nor the tokenizer names an EOS token"
            )
        pad = self.tokenizer.pad_token_id
        self.pad_token_id = pad if pad is not None else min(self.eos_token_ids)

    def generate(
        self,
        prompts: list[str],
        *,
        max_new_tokens: int = 768,
        temperature: float = 0.0,
        stop: list[str] | None = None,
        seed: int | None = None,
    ) -> list[LLMResponse]:
        """Continue each raw prompt (the tokenizer adds its usual special tokens, e.g. a BOS)."""
        encoded = [self.tokenizer(p, add_special_tokens=True)["input_ids"] for p in prompts]
        return self._generate_ids(encoded, max_new_tokens, temperature, stop, seed)

    def chat(
        self,
        conversations: list[list[dict]],
        *,
        max_new_tokens: int = 768,
        temperature: float = 0.0,
        stop: list[str] | None = None,
        seed: int | None = None,
    ) -> list[LLMResponse]:
        """Answer each conversation as the assistant, through the tokenizer's chat template."""
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(
                f"{self.model_name}: the tokenizer has no chat template; use generate() with raw prompts"
            )
        texts = [
            self.tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
            for c in conversations
        ]
        # The template already holds any BOS; adding special tokens again would double it.
        encoded = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        return self._generate_ids(encoded, max_new_tokens, temperature, stop, seed)

    # -- inside -----------------------------------------------------------------------------------------

    def _generate_ids(
        self,
        encoded: list[list[int]],
        max_new_tokens: int,
        temperature: float,
        stop: list[str] | None,
        seed: int | None,
    ) -> list[LLMResponse]:
        import torch

        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        if temperature < 0:
            raise ValueError(f"temperature must be 0 (greedy) or positive, got {temperature}")
        for index, ids in enumerate(encoded):
            if not ids:
                raise ValueError(
                    f"prompt {index} is empty after tokenization; give the model something to continue"
                )
        stops, stop_token_ids = self.split_stop_tokens(stop or [])
        end_ids = self.eos_token_ids | stop_token_ids
        if seed is not None:
            torch.manual_seed(seed)
        # Longest first: similar lengths share a batch (less padding) and an out-of-memory shows up at once.
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]), reverse=True)
        results: list[LLMResponse | None] = [None] * len(encoded)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            rows = [encoded[i] for i in batch]
            responses = self._generate_batch(rows, max_new_tokens, temperature, stops, end_ids)
            for index, response in zip(batch, responses, strict=True):
                results[index] = response
        return [r for r in results if r is not None]

    def split_stop_tokens(self, stop: list[str]) -> tuple[list[str], set[int]]:
        """Separate stop strings that are single added tokens (such as "<|im_end|>") from plain text.

        Decoding skips special tokens, so such a stop string would never be seen in the text; as a token id
        it ends the row like an EOS does.
        """
        added = self.tokenizer.get_added_vocab()
        strings = [s for s in stop if s and s not in added]
        return strings, {added[s] for s in stop if s in added}

    def _generate_batch(
        self,
        batch: list[list[int]],
        max_new_tokens: int,
        temperature: float,
        stops: list[str],
        end_ids: set[int],
    ) -> list[LLMResponse]:
        import torch
        from transformers import GenerationConfig, StoppingCriteriaList

        started = time.perf_counter()
        width = max(len(ids) for ids in batch)
        input_ids = torch.full((len(batch), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(batch):
            input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, width - len(ids) :] = 1
        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}
            if temperature > 0
            else {"do_sample": False}
        )
        config = GenerationConfig(
            max_new_tokens=max_new_tokens,
            eos_token_id=sorted(end_ids),
            pad_token_id=self.pad_token_id,
            **sampling,
        )
        stop_watch = _StopStringCriteria(self.tokenizer, stops, width, len(batch))
        with torch.inference_mode():
            output = self.model.generate(
                input_ids=input_ids.to(self.device),
                attention_mask=attention_mask.to(self.device),
                generation_config=config,
                stopping_criteria=StoppingCriteriaList([stop_watch]) if stops else None,
            )
        latency = time.perf_counter() - started
        responses = []
        for row, ids in enumerate(batch):
            generated = output[row, width:].tolist()
            text, finish_reason, used = self._finish(generated, stops, stop_watch.stopped_at[row], end_ids)
            responses.append(
                LLMResponse(
                    text=text,
                    finish_reason=finish_reason,
                    usage={"prompt_tokens": len(ids), "completion_tokens": used},
                    model=self.model_name,
                    latency_s=latency,
                    attempts=1,
                )
            )
        return responses

    def _finish(
        self, generated: list[int], stops: list[str], stopped_at: int | None, end_ids: set[int]
    ) -> tuple[str, str, int]:
        """Cut one row's tokens at its end (EOS or the step its stop string appeared) and its text at the stop."""
        end = len(generated)
        ended = False
        for position, token in enumerate(generated):
            if token in end_ids:
                end, ended = position, True
                break
        used = end + 1 if ended else end
        if stopped_at is not None and stopped_at < used:
            end = used = stopped_at
        text = self.tokenizer.decode(generated[:end], skip_special_tokens=True)
        cut = min((text.find(s) for s in stops if s in text), default=-1)
        if cut >= 0:
            return text[:cut], "stop", used
        return text, "stop" if ended else "length", used


def _eos_ids(*sources: Any) -> set[int]:
    ids: set[int] = set()
    for source in sources:
        if isinstance(source, int):
            ids.add(source)
        elif isinstance(source, (list, tuple)):
            ids.update(i for i in source if isinstance(i, int))
    return ids


class _StopStringCriteria:
    """Marks each row done once its generated text contains a stop string; records the step it happened.

    Only the last few tokens of each row are decoded per step: a stop string of n characters spans at
    most 4n byte-level tokens (4 UTF-8 bytes a character), plus one for a partial character at the edge.
    """

    def __init__(self, tokenizer: Any, stops: list[str], prompt_width: int, rows: int):
        self.tokenizer = tokenizer
        self.stops = stops
        self.prompt_width = prompt_width
        self.window = 4 * max((len(s) for s in stops), default=0) + 2
        self.stopped_at: list[int | None] = [None] * rows

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        generated = input_ids[:, self.prompt_width :]
        steps = generated.shape[1]
        for row in range(generated.shape[0]):
            if self.stopped_at[row] is None:
                tail = self.tokenizer.decode(
                    generated[row, -self.window :].tolist(), skip_special_tokens=True
                )
                if any(s in tail for s in self.stops):
                    self.stopped_at[row] = steps
        done = [at is not None for at in self.stopped_at]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)
