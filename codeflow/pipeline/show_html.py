"""`codeflow show RUN --pair N --html FILE`: one pair as a self-contained web page.

The page holds the prompt, the trajectory, the rejected code with D- marked and the chosen code with D+ marked,
and, with a tokenizer, the tokens of each side with the ones in its mask marked: the completion tokenized alone
(no special tokens), a token in the mask when its characters overlap a span, as the trainer's masks are made
(`codeflow.diff.spans_to_token_mask`). No script, no external file: it opens anywhere, offline.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from codeflow.diff.tokens import spans_to_token_mask

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; color: #222; }
h1 { font-size: 1.3rem; } h2 { font-size: 1.05rem; margin-top: 1.6rem; }
pre { background: #f6f6f6; padding: .8rem; overflow-x: auto; line-height: 1.4; border-radius: 4px; }
.prompt { white-space: pre-wrap; }
.dminus { background: #f4b8b8; outline: 1px solid #c33; }
.dplus { background: #b8e6b8; outline: 1px solid #393; }
.tokens { font-family: ui-monospace, monospace; font-size: .85rem; line-height: 2; white-space: pre-wrap; }
.tok { border: 1px solid #ccc; border-radius: 3px; padding: 0 1px; margin: 0 1px; }
.tok.masked.minus { background: #f4b8b8; border-color: #c33; }
.tok.masked.plus { background: #b8e6b8; border-color: #393; }
table { border-collapse: collapse; } td, th { padding: .2rem .8rem; border-bottom: 1px solid #ddd; text-align: left; }
.legend span { margin-right: 1.5rem; }
"""


def _marked(text: str, spans: list[list[int]], css: str) -> str:
    out, at = [], 0
    for start, end in spans:
        out += [html.escape(text[at:start]), f'<mark class="{css}">', html.escape(text[start:end]), "</mark>"]
        at = end
    out.append(html.escape(text[at:]))
    return "".join(out)


def token_mask(tokenizer: Any, text: str, spans: list[list[int]]) -> tuple[list[str], list[bool]]:
    """The token pieces of `text` (by their character ranges) and which are in the mask of `spans`."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = [tuple(o) for o in enc["offset_mapping"]]
    return [text[s:e] for s, e in offsets], spans_to_token_mask(offsets, spans)


def _tokens(pieces: list[str], mask: list[bool], side: str) -> str:
    cells = [
        f'<span class="tok{" masked " + side if masked else ""}">{html.escape(piece) or "&#8203;"}</span>'
        for piece, masked in zip(pieces, mask, strict=True)
    ]
    return f'<div class="tokens" data-masked="{sum(mask)}" data-tokens="{len(mask)}">{"".join(cells)}</div>'


def pair_page(
    pair: dict, attempts: list[dict], index: int, tokenizer: Any = None, tokenizer_name: str = ""
) -> str:
    """The page of one pairs.jsonl record and its problem's attempt rows."""
    e = html.escape
    rows = []
    for a in attempts:
        role = {pair["rejected_iteration"]: "rejected", pair["chosen_iteration"]: "chosen"}.get(
            a["iteration"], ""
        )
        detail = " ".join(x for x in (a.get("error_type"), a.get("failing_test")) if x)
        rows.append(
            f"<tr><td>{a['iteration']}</td><td>{e(a.get('status') or 'not run')}</td><td>{e(detail)}</td>"
            f"<td>{role}</td></tr>"
        )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>pair {index}: {e(pair['problem_id'])}</title><style>{STYLE}</style></head><body>",
        f"<h1>pair {index}: problem <code>{e(pair['problem_id'])}</code> ({e(pair['test_style'])} tests)</h1>",
        f'<h2>prompt</h2><pre class="prompt">{e(pair["prompt"].strip())}</pre>',
        "<h2>trajectory</h2><table><tr><th>iteration</th><th>status</th><th>error</th><th></th></tr>",
        *rows,
        "</table>",
        '<p class="legend"><span><mark class="dminus key">D-</mark> changed in the rejected version</span>'
        '<span><mark class="dplus key">D+</mark> changed in the chosen version</span></p>',
        f"<h2>rejected (iteration {pair['rejected_iteration']}, {e(str(pair['rejected_status']))}), D- marked</h2>",
        f'<pre id="rejected">{_marked(pair["rejected"], pair["rejected_spans"], "dminus")}</pre>',
        f"<h2>chosen (iteration {pair['chosen_iteration']}), D+ marked</h2>",
        f'<pre id="chosen">{_marked(pair["chosen"], pair["chosen_spans"], "dplus")}</pre>',
    ]
    if tokenizer is None:
        parts.append(
            "<h2>token masks</h2><p>Give <code>--tokenizer NAME_OR_PATH</code> to see the masks.</p>"
        )
    else:
        for side, key, css in (("rejected", "rejected_spans", "minus"), ("chosen", "chosen_spans", "plus")):
            pieces, mask = token_mask(tokenizer, pair[side], pair[key])
            parts.append(
                f"<h2>{side} tokens ({e(tokenizer_name)}): {sum(mask)} of {len(mask)} in the "
                f"{'D-' if css == 'minus' else 'D+'} mask</h2>"
            )
            parts.append(
                _tokens(pieces, mask, css).replace('class="tokens"', f'class="tokens" id="{side}-tokens"', 1)
            )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_pair_page(run_dir: str | Path, index: int, out: str | Path, tokenizer: str | None = None) -> Path:
    from codeflow.pipeline.db import read_run_db
    from codeflow.pipeline.show import read_pair

    pair = read_pair(run_dir, index)
    db = read_run_db(run_dir)
    try:
        attempts = db.attempts_of(pair["problem_id"])
        tokenizer = tokenizer or (db.get_meta("config") or {}).get("tokenizer")
    finally:
        db.close()
    loaded = None
    if tokenizer:
        from codeflow.cli import silence_third_party_bars

        silence_third_party_bars(("transformers",))
        try:
            from transformers import AutoTokenizer

            loaded = AutoTokenizer.from_pretrained(tokenizer)
        except (OSError, ValueError) as e:
            first = " ".join(str(e).split())[:200]
            raise FileNotFoundError(f"--tokenizer {tokenizer}: cannot load it ({first})") from None
    out = Path(out)
    out.write_text(pair_page(pair, attempts, index, loaded, tokenizer or ""), encoding="utf-8")
    return out
