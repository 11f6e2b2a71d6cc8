"""`codeflow` console script. Each subcommand lives beside the code it drives and registers itself here.

Also the small plumbing both console scripts share: options declared once as dataclass fields (`option`), turned
into command-line flags (`add_options`) and back into the dataclass (`options_from_args`), and one-line errors.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
from typing import Any

# Modules that define `register(subparsers)`; each adds its subcommands and sets `func` on them.
SUBCOMMAND_MODULES = ["codeflow.diff.cli", "codeflow.pipeline.cli"]


def option(
    default: Any = None,
    help: str = "",
    *,
    flag: str | None = None,
    type: Any = None,
    choices: Any = None,
    metavar: str | None = None,
    action: str | None = None,
    cli: bool = True,
    required: bool = False,
    default_factory: Any = None,
) -> Any:
    """A dataclass field that is also a command-line option: `--field-name` unless `flag` says otherwise.

    A `flag` without leading dashes is a positional argument. `action="store_true"` / `"store_false"` make a
    switch (for `store_false`, name the flag, e.g. `--no-progress`); `action="append"` a repeatable option.
    `cli=False` keeps a field out of the command line.
    """
    meta = {
        "cli": cli,
        "help": help,
        "flag": flag,
        "type": type,
        "choices": choices,
        "metavar": metavar,
        "action": action,
        "required": required,
    }
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def flag_of(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def add_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    skip: tuple[str, ...] | set[str] = (),
    defaults: dict[str, Any] | None = None,
    flags: dict[str, str] | None = None,
) -> None:
    """Add one flag per `option` field of the dataclass `cls`; its help ends with the default.

    `defaults` and `flags` override a field's default or flag name for this command only.
    """
    defaults, flags = defaults or {}, flags or {}
    for f in dataclasses.fields(cls):
        if not f.metadata.get("cli") or f.name in skip:
            continue
        meta = f.metadata
        default = defaults.get(f.name, _default_of(f))
        name = flags.get(f.name, flag_of(f))
        positional = not name.startswith("-")
        kwargs: dict[str, Any] = {} if positional else {"dest": f.name, "default": default}
        if meta.get("required") and not positional:
            kwargs["required"] = True
        action = meta.get("action")
        text = meta.get("help", "")
        if action in ("store_true", "store_false"):
            kwargs["action"] = action
        else:
            if action:
                kwargs["action"] = action
            for key in ("type", "choices", "metavar"):
                if meta.get(key) is not None:
                    kwargs[key] = meta[key]
            if not positional and "metavar" not in kwargs and "choices" not in kwargs:
                kwargs["metavar"] = name.lstrip("-").upper().replace("-", "_")
            if default not in (None, [], {}, "") and action != "append" and not positional:
                text += f" (default: {_shown(default)})"
        kwargs["help"] = text
        parser.add_argument(name, **kwargs)


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        import json

        return json.dumps(value)
    return str(value)


def options_from_args(cls: type, args: argparse.Namespace, **values: Any) -> Any:
    """Build `cls` from parsed arguments: every field found on `args` (a positional under its flag's name),
    then `values` on top."""
    found = {}
    for f in dataclasses.fields(cls):
        dest = f.name if flag_of(f).startswith("-") else flag_of(f)
        if hasattr(args, dest):
            found[f.name] = getattr(args, dest)
    return cls(**(found | values))


def one_line_errors(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """Make a subcommand's bad options print one stderr line, `COMMAND: error: ...`, and exit 2 (argparse's
    default prints the whole usage text first)."""

    def error(message: str) -> None:  # type: ignore[misc]
        error_line(command, f"{message} (see {command} --help)")
        sys.exit(2)

    parse_known = parser.parse_known_args

    def parse_known_args(args=None, namespace=None):  # noqa: ANN001, ANN202 - argparse's own signature
        namespace, extras = parse_known(args, namespace)
        if extras:  # the top-level parser would report these with its usage text
            error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras

    parser.error = error  # type: ignore[method-assign]
    parser.parse_known_args = parse_known_args  # type: ignore[method-assign]
    return parser


def error_line(command: str, message: object) -> None:
    """The one stderr line a bad input gets: `COMMAND: error: MESSAGE` (never a traceback)."""
    print(f"{command}: error: {message}", file=sys.stderr)


def silence_third_party_bars(load: tuple[str, ...] = ()) -> None:
    """No "Loading weights" / download bars from transformers, huggingface_hub and datasets (--no-progress).

    Those already imported are told directly; those named in `load` are imported first, so that a model or
    dataset loaded later stays quiet too. The process environment is left alone.
    """
    import importlib

    for name in load:
        if name == "transformers":
            importlib.import_module("transformers.utils.logging")
        elif name in ("huggingface_hub", "datasets"):
            importlib.import_module(name)
    if "huggingface_hub" in sys.modules:
        importlib.import_module("huggingface_hub.utils").disable_progress_bars()
    if "transformers" in sys.modules:
        importlib.import_module("transformers.utils.logging").disable_progress_bar()
    if "datasets" in sys.modules:
        sys.modules["datasets"].disable_progress_bars()


def build_parser(prog: str, modules: list[str], description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in modules:
        importlib.import_module(name).register(subparsers)
    return parser


def run(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    return int(args.func(args) or 0)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("codeflow", SUBCOMMAND_MODULES, "Build code preference data from bug fixes.")
    return run(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
