"""Preference rows -> token ids and per-token diff masks, a chunk of rows at a time with batched tokenizer calls.

No torch here: this module is what worker processes import. Masks come from the tokenizer's offset mapping
(`codeflow.diff.spans_to_token_mask`), never from decoding and re-encoding ids. Prompts get exactly the special
tokens the tokenizer itself adds before a text (a BOS for Llama-style tokenizers, none for GPT-2 or Qwen style).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from codeflow.diff.fence import extract_code
from codeflow.diff.tokens import spans_to_token_mask

Row = tuple[str, Any]  # (where: "file:line", the parsed row or the BadRowError its line raised)


class BadRowError(ValueError):
    """A row that cannot be trained on; the message names the row."""


@dataclass
class TokenizedPair:
    row_id: str
    prompt_ids: np.ndarray  # int32
    chosen_ids: np.ndarray  # completion ids plus EOS
    rejected_ids: np.ndarray  # empty for --loss sft
    chosen_diff: np.ndarray  # bool: D+ tokens of the chosen completion (EOS never)
    rejected_diff: np.ndarray  # bool: D- tokens of the rejected completion (EOS never)
    rejected_had_diff: bool = True  # before truncation


@dataclass(frozen=True)
class TokenizeSettings:
    mask_mode: str = "target"
    max_length: int = 1024
    max_prompt_length: int = 512
    context: int = 0
    chat_template: bool = False
    sft: bool = False  # chosen only: no rejected side, no spans


class TextEncoder:
    """Encodes lists of texts without special tokens, as the tokenizer does, and travels to worker processes.

    A fast tokenizer is carried as its `tokenizers` JSON (truncation and padding off), so workers need neither
    transformers nor torch; a slow one stays in this process.
    """

    def __init__(self, tokenizer: Any):
        backend = getattr(tokenizer, "backend_tokenizer", None)
        self.json = backend.to_str() if backend is not None else None
        self.prefix_ids = special_prefix(tokenizer)
        self.eos_id = tokenizer.eos_token_id
        self._slow = None if backend is not None else tokenizer
        self._backend = None

    def __getstate__(self) -> dict:
        if self.json is None:
            raise TypeError("a slow (Python) tokenizer cannot be sent to worker processes")
        return {"json": self.json, "prefix_ids": self.prefix_ids, "eos_id": self.eos_id}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _slow=None, _backend=None)

    @property
    def parallel_safe(self) -> bool:
        return self.json is not None

    def encode(self, texts: list[str]) -> list[tuple[list[int], list[tuple[int, int]]]]:
        """(ids, character offsets) of each text."""
        if not texts:
            return []
        if self._slow is not None:
            enc = self._slow(texts, add_special_tokens=False, return_offsets_mapping=True)
            return list(zip(enc["input_ids"], enc["offset_mapping"], strict=True))
        if self._backend is None:
            from tokenizers import Tokenizer

            self._backend = Tokenizer.from_str(self.json)
            self._backend.no_truncation()
            self._backend.no_padding()
        return [(e.ids, e.offsets) for e in self._backend.encode_batch(texts, add_special_tokens=False)]


def special_prefix(tokenizer: Any) -> list[int]:
    """The ids the tokenizer itself puts before a text (`add_special_tokens=True`): [BOS] or nothing."""
    bare = list(tokenizer("a", add_special_tokens=False)["input_ids"])
    full = list(tokenizer("a", add_special_tokens=True)["input_ids"])
    for i in range(len(full) - len(bare) + 1):
        if full[i : i + len(bare)] == bare:
            return full[:i]
    return []


def render_prompt(tokenizer: Any, prompt: str) -> str:
    """The prompt as a user message in the tokenizer's chat template, ready for the assistant's answer."""
    messages = [{"role": "user", "content": prompt}]
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def _check_spans(spans: Any, text: str, name: str, where: str) -> list[tuple[int, int]]:
    try:
        pairs = [(int(s), int(e)) for s, e in spans]
    except (TypeError, ValueError) as err:
        raise BadRowError(f"{where}: {name} must be a list of [start, end] pairs") from err
    for s, e in pairs:
        if not 0 <= s <= e <= len(text):
            raise BadRowError(f"{where}: {name} span [{s}, {e}) is outside the string (length {len(text)})")
    return _merge(sorted(pairs))


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for s, e in spans:
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
        else:
            merged.append((s, e))
    return merged


def widen_spans(text: str, spans: list[tuple[int, int]], lines: int) -> list[tuple[int, int]]:
    """Grow each span to whole lines plus `lines` lines of context on each side (`--context K`)."""
    if lines <= 0 or not spans:
        return spans
    starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
    line_starts = np.asarray(starts)
    out = []
    for s, e in spans:
        first = max(int(np.searchsorted(line_starts, s, side="right")) - 1 - lines, 0)
        last = int(np.searchsorted(line_starts, max(e - 1, s), side="right")) - 1 + lines
        end = starts[last + 1] if last + 1 < len(starts) else len(text)
        out.append((starts[first], end))
    return _merge(out)


def diff_spans(
    chosen: str, rejected: str, context: int
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(chosen D+ spans, rejected D- spans) from the statement-level diff of the code in both answers."""
    from codeflow.diff import diff_code  # lazy: only rows without spans need the diff engine

    chosen_code, chosen_at = extract_code(chosen)
    rejected_code, rejected_at = extract_code(rejected)
    result = diff_code(rejected_code, chosen_code, granularity="statement", context=context)
    plus = [(s + chosen_at, e + chosen_at) for s, e in result.after_spans]
    minus = [(s + rejected_at, e + rejected_at) for s, e in result.before_spans]
    return _merge(sorted(plus)), _merge(sorted(minus))


def row_spans(
    row: dict[str, Any], where: str, context: int
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Validated (chosen_spans, rejected_spans) of a row: given ones (D- widened by `context` lines) or diffed."""
    for name in ("prompt", "chosen", "rejected"):
        if not isinstance(row.get(name), str):
            raise BadRowError(f"{where}: missing or non-string field {name!r}")
    for name in ("chosen", "rejected"):
        if not row[name]:
            raise BadRowError(f"{where}: empty {name} completion")
    if row.get("rejected_spans") is None:
        return diff_spans(row["chosen"], row["rejected"], context)
    chosen_spans = _check_spans(row.get("chosen_spans") or [], row["chosen"], "chosen_spans", where)
    rejected_spans = _check_spans(row["rejected_spans"], row["rejected"], "rejected_spans", where)
    return chosen_spans, widen_spans(row["rejected"], rejected_spans, context)


def sft_fields(row: dict[str, Any], where: str) -> tuple[str, str]:
    """(prompt, completion) of a supervised row: `chosen` (or `text`) after an optional `prompt`."""
    text = row.get("chosen", row.get("text"))
    if not isinstance(text, str) or not text:
        raise BadRowError(f"{where}: missing, empty or non-string field 'chosen' (or 'text')")
    prompt = row.get("prompt", "")
    if not isinstance(prompt, str):
        raise BadRowError(f"{where}: field 'prompt' must be a string")
    return prompt, text


def cut_prompt(ids: list[int], empty_ids: list[int], limit: int) -> list[int] | None:
    """`ids` cut to `limit` tokens from the left of its content, keeping the tokens it shares at the start and
    at the end with `empty_ids` (the same template around an empty prompt: BOS, chat header, assistant header).
    None when the template alone does not fit."""
    if not limit or len(ids) <= limit:
        return ids
    head = 0
    while head < min(len(ids), len(empty_ids)) and ids[head] == empty_ids[head]:
        head += 1
    tail = 0
    while tail < len(empty_ids) - head and ids[-1 - tail] == empty_ids[-1 - tail]:
        tail += 1
    room = limit - head - tail
    if room <= 0:
        return None
    content = ids[head : len(ids) - tail]
    return ids[:head] + content[-room:] + ids[len(ids) - tail :]


def tokenize_rows(
    rows: list[tuple[str, Any, str | None]],
    encoder: TextEncoder,
    settings: TokenizeSettings,
    empty_prompt_ids: list[int],
) -> list[TokenizedPair | BadRowError]:
    """Tokenize one chunk of (where, row, rendered chat prompt or None), three batched tokenizer calls in all.

    Each result is the row's TokenizedPair or the BadRowError naming it (the caller raises or counts it).
    """
    results: list[TokenizedPair | BadRowError | None] = [None] * len(rows)
    todo = []  # (index, where, row id, prompt text, chosen, chosen spans, rejected, rejected spans)
    for i, (where, row, rendered) in enumerate(rows):
        try:
            if isinstance(row, BadRowError):
                raise row
            if not isinstance(row, dict):
                raise BadRowError(f"{where}: a row must be a JSON object")
            if settings.sft:
                prompt, chosen = sft_fields(row, where)
                rejected, chosen_spans, rejected_spans = "", [], []
            else:
                chosen_spans, rejected_spans = row_spans(row, where, settings.context)
                prompt, chosen, rejected = row["prompt"], row["chosen"], row["rejected"]
            row_id = str(row.get("id", where))
            todo.append((i, where, row_id, rendered if rendered is not None else prompt, chosen, chosen_spans,
                         rejected, rejected_spans))  # fmt: skip
        except BadRowError as err:
            results[i] = err
    prompts = encoder.encode([t[3] for t in todo])
    chosens = encoder.encode([t[4] for t in todo])
    rejecteds = encoder.encode([t[6] for t in todo]) if not settings.sft else [([], [])] * len(todo)
    prefix = [] if settings.chat_template else encoder.prefix_ids  # a chat template writes its own BOS
    for (i, where, row_id, _, _, c_spans, _, r_spans), p, c, r in zip(
        todo, prompts, chosens, rejecteds, strict=True
    ):
        results[i] = _pair(where, row_id, prefix + list(p[0]), c, r, c_spans, r_spans, encoder.eos_id,
                           settings, empty_prompt_ids)  # fmt: skip
    return results  # type: ignore[return-value]


def _pair(
    where: str,
    row_id: str,
    prompt: list[int],
    chosen: tuple[list[int], list[tuple[int, int]]],
    rejected: tuple[list[int], list[tuple[int, int]]],
    chosen_spans: list[tuple[int, int]],
    rejected_spans: list[tuple[int, int]],
    eos_id: int,
    settings: TokenizeSettings,
    empty_prompt_ids: list[int],
) -> TokenizedPair | BadRowError:
    chosen_ids = list(chosen[0]) + [eos_id]
    chosen_diff = list(spans_to_token_mask(chosen[1], chosen_spans)) + [False]
    rejected_ids = list(rejected[0]) + [eos_id] if not settings.sft else []
    rejected_diff = (
        list(spans_to_token_mask(rejected[1], rejected_spans)) + [False] if not settings.sft else []
    )
    if not prompt:
        if not settings.sft:
            return BadRowError(
                f"{where}: the prompt tokenizes to nothing, so no completion token can be scored"
            )
        # a bare text (pre-training): its first token is context only, nothing can predict it
        prompt, chosen_ids, chosen_diff = chosen_ids[:1], chosen_ids[1:], chosen_diff[1:]
    cut = cut_prompt(prompt, empty_prompt_ids, settings.max_prompt_length)
    if cut is None:
        return BadRowError(
            f"{where}: the chat template alone is longer than --max-prompt-length {settings.max_prompt_length}"
        )
    room = max(settings.max_length - len(cut), 0)
    return TokenizedPair(
        row_id=row_id,
        prompt_ids=np.asarray(cut, dtype=np.int32),
        chosen_ids=np.asarray(chosen_ids[:room], dtype=np.int32),
        rejected_ids=np.asarray(rejected_ids[:room], dtype=np.int32),
        chosen_diff=np.asarray(chosen_diff[:room], dtype=bool),
        rejected_diff=np.asarray(rejected_diff[:room], dtype=bool),
        rejected_had_diff=any(rejected_diff),
    )


# worker-process state: set once per process by `init_worker`, so each task carries only its rows
_WORKER: dict[str, Any] = {}


def init_worker(encoder: TextEncoder, settings: TokenizeSettings, empty_prompt_ids: list[int]) -> None:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # the processes are the parallelism
    _WORKER.update(encoder=encoder, settings=settings, empty=empty_prompt_ids)


def tokenize_chunk(rows: list[tuple[str, Any, str | None]]) -> list[TokenizedPair | BadRowError]:
    return tokenize_rows(rows, _WORKER["encoder"], _WORKER["settings"], _WORKER["empty"])
