"""Every shell session shown in README.md and docs/*.md runs as written and prints what the docs show."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.doccheck import ROOT, Command, first_difference, output_matches, run_command, scratch_dir, sessions

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _documents_with_sessions() -> list[Path]:
    return [doc for doc in DOCS if sessions(doc)]


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("doc", _documents_with_sessions(), ids=lambda p: p.name)
def test_documented_sessions_print_what_the_docs_show(doc: Path, tmp_path: Path) -> None:
    work = scratch_dir(doc, tmp_path)
    status = 0
    for session in sessions(doc):
        if session.skip:
            continue
        if session.setup:
            setup_status, output = run_command(Command(session.line, session.setup), work, 0, timeout_s=600)
            assert setup_status == 0, f"{doc.relative_to(ROOT)}:{session.line}: setup failed:\n{output}"
        for command in session.commands:
            where = f"{doc.relative_to(ROOT)}:{command.line}: $ {command.text}"
            status, output = run_command(command, work, status, timeout_s=600)
            actual = output.splitlines()
            if session.compare:
                assert output_matches(command.expected, actual), (
                    f"{where}\n{first_difference(command.expected, actual)}\n--- printed:\n{output}"
                )
            else:
                assert status == 0, f"{where}\nexited {status}:\n{output}"


def test_every_skipped_session_says_why() -> None:
    for doc in DOCS:
        for session in sessions(doc):
            if session.skip is not None:
                assert session.skip != "no reason given", f"{doc.name}:{session.line}: say why it is skipped"


@pytest.mark.parametrize(
    ("expected", "actual", "matches"),
    [
        (["a", "b"], ["a", "b"], True),
        (["a", "b"], ["a", "c"], False),
        (["a", "...", "d"], ["a", "b", "c", "d"], True),
        (["a", "...", "d"], ["a", "d"], True),
        (["a", "...", "d"], ["a", "b", "c"], False),
        (["took ... s"], ["took 1.25 s"], True),
        (["took ... s"], ["took 1.25 ms"], False),
        (["a", ""], ["a", "", ""], True),
        (["..."], [], True),
    ],
)
def test_output_matching_rules(expected: list[str], actual: list[str], matches: bool) -> None:
    assert output_matches(expected, actual) is matches


def test_sessions_parse_continuations_directives_and_expected_output(tmp_path: Path) -> None:
    doc = tmp_path / "d.md"
    doc.write_text(
        "text\n\n```\n$ echo a \\\n  b\na b\n$ true\n```\n\n<!-- doccheck: skip needs a GPU -->\n```bash\n"
        "$ nvidia-smi\n```\n\n```python\nprint('no session here')\n```\n"
        "<!-- doccheck: setup touch made -->\n```\n$ ls made\nmade\n```\n"
    )
    found = sessions(doc)
    assert [len(s.commands) for s in found] == [2, 1, 1]
    assert found[2].setup == "touch made" and found[2].compare and found[0].setup is None
    assert found[0].commands[0].text == "echo a \\\n  b" and found[0].commands[0].expected == ["a b"]
    assert found[0].skip is None and found[1].skip == "needs a GPU"


def _quickstart() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## Quickstart", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_readme_quickstart_is_two_commands_that_ci_runs() -> None:
    install_and_build, install_and_test = _quickstart()
    assert install_and_build.startswith("pip install -e . && codeflow build ")
    assert install_and_test.endswith("&& python3 -m pytest")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    for install in (install_and_build, install_and_test):
        command = install.split(" && ")[0].replace("pip install", "pip install -q")
        assert f"python3 -m {command}" in ci, f".ci/run does not install as {install!r}"
    assert "python3 -m pytest" in ci
    # the README's sessions after the quickstart start from the quickstart's build
    build = install_and_build.split(" && ", 1)[1]
    setups = [s.setup for s in sessions(ROOT / "README.md") if s.setup]
    assert setups and all(setup.startswith(build) for setup in setups)
