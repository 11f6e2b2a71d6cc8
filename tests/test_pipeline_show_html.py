"""`codeflow show RUN --pair N --html FILE`: a self-contained page with the chosen and rejected code, D- and D+,
and the token masks; checked as written and as a real headless browser renders it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from codeflow.cli import main as codeflow_main
from codeflow.diff.tokens import spans_to_token_mask
from codeflow.pipeline.build import BuildConfig, build

ROOT = Path(__file__).resolve().parent.parent
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    rows = [json.loads(line) for line in (ROOT / "examples/problems.jsonl").read_text().splitlines()]
    problems = tmp_path_factory.mktemp("p") / "problems.jsonl"
    keep = ("word_frequencies", "running_max", "merge_intervals", "balanced_brackets")
    problems.write_text("".join(json.dumps(r) + "\n" for r in rows if r["id"] in keep))
    out = tmp_path_factory.mktemp("run")
    result = build(
        BuildConfig(problems=str(problems), out=str(out), seed=1, progress=False, no_humaneval=True)
    )
    assert result.pairs >= 1
    return out


class Marks(HTMLParser):
    """Text inside <mark class=...> and the token spans of each token list, from a page's HTML."""

    def __init__(self):
        super().__init__()
        self.marks: dict[str, list[str]] = {"dminus": [], "dplus": []}
        self.tokens: dict[str, list[tuple[str, bool]]] = {}
        self._mark: str | None = None
        self._list: str | None = None
        self._token: bool | None = None
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("src", "href"):
            if a.get(key):
                self.external.append(a[key])
        if tag == "mark" and a["class"] in self.marks:  # the legend's marks carry a second class
            self._mark = a["class"]
            self.marks[self._mark].append("")
        elif tag == "div" and "tokens" in (a.get("class") or ""):
            self._list = a["id"]
            self.tokens[self._list] = []
        elif tag == "span" and self._list and "tok" in (a.get("class") or "").split():
            self._token = "masked" in a["class"]
            self.tokens[self._list].append(("", self._token))

    def handle_endtag(self, tag):
        if tag == "mark":
            self._mark = None
        elif tag == "div":
            self._list = None
        elif tag == "span":
            self._token = None

    def handle_data(self, data):
        if self._mark:
            self.marks[self._mark][-1] += data
        if self._list and self._token is not None:
            piece, masked = self.tokens[self._list][-1]
            self.tokens[self._list][-1] = (piece + data, masked)


def expected(pair: dict, tokenizer) -> dict:
    out = {}
    for side, key in (("rejected", "rejected_spans"), ("chosen", "chosen_spans")):
        enc = tokenizer(pair[side], add_special_tokens=False, return_offsets_mapping=True)
        out[side] = spans_to_token_mask(enc["offset_mapping"], pair[key])
    return out


def check_page(markup: str, pair: dict, tokenizer) -> None:
    parsed = Marks()
    parsed.feed(markup)
    assert parsed.external == []  # self-contained: nothing fetched
    assert parsed.marks["dminus"] == [pair["rejected"][s:e] for s, e in pair["rejected_spans"]]
    assert parsed.marks["dplus"] == [pair["chosen"][s:e] for s, e in pair["chosen_spans"]]
    masks = expected(pair, tokenizer)
    for side in ("rejected", "chosen"):
        tokens = parsed.tokens[f"{side}-tokens"]
        assert [m for _, m in tokens] == masks[side]
        assert "".join(p.replace("\u200b", "") for p, _ in tokens) == pair[side]  # every character, once
        assert any(masks[side]) or not pair[f"{side}_spans"]


def test_the_page_holds_the_code_the_marks_and_the_token_masks(
    run_dir, tmp_path, test_tokenizer, tokenizer_dir, capsys
):
    page = tmp_path / "pair.html"
    argv = ["show", str(run_dir), "--pair", "0", "--html", str(page), "--tokenizer", str(tokenizer_dir)]
    assert codeflow_main(argv) == 0
    assert str(page) in capsys.readouterr().out
    pair = json.loads((run_dir / "pairs.jsonl").read_text().splitlines()[0])
    markup = page.read_text()
    assert markup.startswith("<!DOCTYPE html>") and pair["problem_id"] in markup
    check_page(markup, pair, test_tokenizer)
    # without a tokenizer the page says how to get the masks
    assert codeflow_main(["show", str(run_dir), "--pair", "0", "--html", str(page)]) == 0
    assert "--tokenizer NAME_OR_PATH" in page.read_text() and "tok masked" not in page.read_text()


def test_a_bad_pair_number_or_tokenizer_is_one_line_exit_2(run_dir, tmp_path, capsys):
    for extra, message in (
        (["--pair", "99"], "--pair must be 0.."),
        (["--tokenizer", str(tmp_path / "nope")], "--tokenizer"),
    ):
        rc = codeflow_main(["show", str(run_dir), "--html", str(tmp_path / "p.html"), *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and message in err[0], err


def test_a_headless_browser_renders_the_marks_and_masks(run_dir, tmp_path, test_tokenizer, tokenizer_dir):
    browser = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if browser is None:
        pytest.skip("no Chromium here (apt-get install -y chromium)")
    page = tmp_path / "pair.html"
    assert codeflow_main(["show", str(run_dir), "--html", str(page), "--tokenizer", str(tokenizer_dir)]) == 0
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    pair = json.loads((run_dir / "pairs.jsonl").read_text().splitlines()[0])
    check_page(dom.stdout, pair, test_tokenizer)  # what the browser built from the page, not the file's text
    shot = tmp_path / "pair.png"
    done = subprocess.run(
        [browser, *flags, "--window-size=1200,1600", f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0 and shot.stat().st_size > 10_000
    assert re.match(rb"\x89PNG", shot.read_bytes()[:4])
