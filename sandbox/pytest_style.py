"""The `pytest` test style: pytest's test-writing API and a runner for one test module, without pytest itself.

Inside the sandbox, `import pytest` gives the module `api()` builds from this file: `raises`, `approx`, `mark`
(`parametrize`, `skip`, `skipif`, `xfail`, `usefixtures`, any other name as a plain mark), `param`, `fixture`,
`skip`, `fail`, `xfail`, `importorskip`, `warns`, `deprecated_call`. `run_module` collects a module's `test*`
functions and `Test*` classes (and unittest.TestCase classes) as pytest does and runs them with their fixtures:
the module's own (function, class, module and session scope, `yield` teardown, `params`, `autouse`) and the
builtins `tmp_path`, `tmp_path_factory`, `tmpdir`, `capsys`, `capfd`, `monkeypatch`, `recwarn`, `request`.
Anything else pytest offers (conftest.py, plugins, `indirect` parametrization, `caplog`, ...) is reported as the
error `UnsupportedPytestFeature` naming it, never silently skipped. docs/sandbox.md says why this is not real pytest.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import itertools
import math
import os
import re
import sys
import tempfile
import types
import unittest
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from numbers import Complex
from pathlib import Path
from typing import Any, NamedTuple

__version__ = "sandbox"


class OutcomeException(BaseException):
    """Base of pytest's outcome exceptions (a BaseException, as in pytest, so `except Exception` misses it)."""

    def __init__(self, msg: str = "") -> None:
        super().__init__(msg)
        self.msg = msg


class Failed(OutcomeException):
    """Raised by pytest.fail() and by a raises/warns block whose exception or warning never came."""


class Skipped(OutcomeException):
    """Raised by pytest.skip() and pytest.importorskip()."""


class XFailed(OutcomeException):
    """Raised by pytest.xfail()."""


class UnsupportedPytestFeature(Exception):
    """A pytest feature outside this subset; the test errors with this type and the feature's name."""


def fail(reason: str = "", pytrace: bool = True) -> None:
    raise Failed(reason)


def skip(reason: str = "", *, allow_module_level: bool = False) -> None:
    raise Skipped(reason)


def xfail(reason: str = "") -> None:
    raise XFailed(reason)


def importorskip(modname: str, minversion: str | None = None, reason: str | None = None) -> types.ModuleType:
    try:
        module = __import__(modname)
    except ImportError:
        raise Skipped(reason or f"could not import {modname!r}") from None
    for part in modname.split(".")[1:]:
        module = getattr(module, part)
    if minversion is not None and str(getattr(module, "__version__", "0")) < minversion:
        raise Skipped(f"module {modname!r} has version {module.__version__}, required is {minversion}")
    return module


def main(*args: Any, **kwargs: Any) -> int:
    """Tests run by the sandbox are collected by it; a test file's own `pytest.main()` call does nothing."""
    return 0


# ---------------------------------------------------------------------------------------------- marks


@dataclass(frozen=True)
class Mark:
    name: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)


class MarkDecorator:
    def __init__(self, mark: Mark) -> None:
        self.mark = mark

    @property
    def name(self) -> str:
        return self.mark.name

    @property
    def args(self) -> tuple:
        return self.mark.args

    @property
    def kwargs(self) -> dict:
        return self.mark.kwargs

    def with_args(self, *args: Any, **kwargs: Any) -> MarkDecorator:
        return MarkDecorator(Mark(self.mark.name, self.mark.args + args, {**self.mark.kwargs, **kwargs}))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # `@pytest.mark.x` on a function or class applies the mark; `pytest.mark.x(...)` makes a new decorator.
        if len(args) == 1 and not kwargs and (inspect.isclass(args[0]) or callable(args[0])):
            target = args[0]
            marks = list(getattr(target, "pytestmark", []))
            if inspect.isclass(target) and "pytestmark" not in vars(target):
                marks = []  # a subclass gets its own list, not its base's
            target.pytestmark = marks + [self.mark]
            return target
        return self.with_args(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<MarkDecorator {self.mark!r}>"


class MarkGenerator:
    """`pytest.mark.NAME`: any name makes a mark; the runner acts on the ones it knows."""

    def __getattr__(self, name: str) -> MarkDecorator:
        if name.startswith("_"):
            raise AttributeError(name)
        return MarkDecorator(Mark(name))


mark = MarkGenerator()


class ParameterSet(NamedTuple):
    values: tuple
    marks: tuple
    id: str | None


def param(*values: Any, marks: Any = (), id: str | None = None) -> ParameterSet:
    if isinstance(marks, MarkDecorator | Mark):
        marks = (marks,)
    return ParameterSet(values, tuple(m.mark if isinstance(m, MarkDecorator) else m for m in marks), id)


def _marks_of(obj: Any) -> list[Mark]:
    """The marks on a function, a module, or a class and its bases (each class keeps its own list)."""
    if inspect.isclass(obj):
        return [m for klass in obj.__mro__ for m in _as_marks(vars(klass).get("pytestmark", []))]
    return _as_marks(getattr(obj, "pytestmark", []))


def _as_marks(found: Any) -> list[Mark]:
    if not isinstance(found, list | tuple):
        found = [found]
    return [
        m.mark if isinstance(m, MarkDecorator) else m for m in found if isinstance(m, Mark | MarkDecorator)
    ]


# ------------------------------------------------------------------------------------------- fixtures


@dataclass
class FixtureSpec:
    function: Callable
    scope: str
    params: list | None
    ids: Any
    autouse: bool
    name: str


SCOPES = ("function", "class", "module", "package", "session")


def fixture(
    fixture_function: Callable | None = None,
    *,
    scope: str = "function",
    params: Any = None,
    autouse: bool = False,
    ids: Any = None,
    name: str | None = None,
) -> Any:
    if scope not in SCOPES:
        raise UnsupportedPytestFeature(f"fixture scope {scope!r} (use one of {', '.join(SCOPES)})")

    def decorate(function: Callable) -> Callable:
        spec = FixtureSpec(function, scope, list(params) if params is not None else None, ids, autouse, "")
        spec.name = name or function.__name__
        function._sandbox_fixture = spec
        return function

    return decorate(fixture_function) if fixture_function is not None else decorate


yield_fixture = fixture


# ------------------------------------------------------------------------------------- raises / warns


class ExceptionInfo:
    def __init__(self) -> None:
        self.type: type | None = None
        self.value: BaseException | None = None
        self.tb = None

    @property
    def typename(self) -> str:
        return self.type.__name__ if self.type is not None else ""

    def errisinstance(self, exc: Any) -> bool:
        return isinstance(self.value, exc)

    def match(self, regexp: str | re.Pattern) -> bool:
        text = str(self.value)
        if not re.search(regexp, text):
            raise AssertionError(f"Regex pattern did not match.\n Regex: {regexp!r}\n Input: {text!r}")
        return True

    def __repr__(self) -> str:
        return f"<ExceptionInfo {self.value!r}>" if self.value is not None else "<ExceptionInfo for raises>"


def _check_exception_types(expected: Any, what: str) -> tuple:
    types_ = expected if isinstance(expected, tuple) else (expected,)
    for t in types_:
        if not (isinstance(t, type) and issubclass(t, BaseException)):
            raise TypeError(f"expected exception must be a BaseException type, not {t!r} ({what})")
    return types_


class RaisesContext:
    def __init__(self, expected: Any, match: str | re.Pattern | None) -> None:
        self.expected = _check_exception_types(expected, "pytest.raises")
        self.match_expr = match
        self.excinfo = ExceptionInfo()

    def __enter__(self) -> ExceptionInfo:
        return self.excinfo

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if exc_type is None:
            names = " or ".join(repr(t) for t in self.expected)
            raise Failed(f"DID NOT RAISE {names}")
        if not issubclass(exc_type, self.expected):
            return False  # a different exception goes on, as in pytest
        self.excinfo.type, self.excinfo.value, self.excinfo.tb = exc_type, exc, tb
        if self.match_expr is not None:
            self.excinfo.match(self.match_expr)
        return True


def raises(expected_exception: Any, *args: Any, match: str | re.Pattern | None = None, **kwargs: Any) -> Any:
    context = RaisesContext(expected_exception, match)
    if not args:
        if kwargs:
            raise TypeError(f"unexpected keyword arguments to pytest.raises: {sorted(kwargs)}")
        return context
    function, *rest = args
    with context as excinfo:
        function(*rest, **kwargs)
    return excinfo


class WarningsRecorder(warnings.catch_warnings):
    """A list of the warnings caught while active (the `recwarn` fixture, and what `pytest.warns` returns)."""

    def __init__(self) -> None:
        super().__init__(record=True)
        self._list: list = []

    @property
    def list(self) -> list:
        return self._list

    def __getitem__(self, i: int) -> Any:
        return self._list[i]

    def __iter__(self) -> Iterator:
        return iter(self._list)

    def __len__(self) -> int:
        return len(self._list)

    def pop(self, cls: type = Warning) -> Any:
        for i, w in enumerate(self._list):
            if issubclass(w.category, cls):
                return self._list.pop(i)
        raise AssertionError(f"{cls!r} not found in warning list")

    def clear(self) -> None:
        self._list[:] = []

    def __enter__(self) -> WarningsRecorder:
        self._list = super().__enter__()
        warnings.simplefilter("always")
        return self


class WarningsChecker(WarningsRecorder):
    def __init__(self, expected: Any, match: str | re.Pattern | None) -> None:
        super().__init__()
        self.expected = expected if isinstance(expected, tuple) else (expected,)
        self.match_expr = match

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)
        if exc[0] is not None:
            return
        for w in self._list:
            if issubclass(w.category, self.expected) and (
                self.match_expr is None or re.search(self.match_expr, str(w.message))
            ):
                return
        names = " or ".join(repr(t) for t in self.expected)
        raise Failed(
            f"DID NOT WARN. No warnings of type {names} were emitted; emitted: {[w.message for w in self]}"
        )


def warns(
    expected_warning: Any = Warning, *args: Any, match: str | re.Pattern | None = None, **kwargs: Any
) -> Any:
    checker = WarningsChecker(expected_warning, match)
    if not args:
        return checker
    function, *rest = args
    with checker:
        return function(*rest, **kwargs)


def deprecated_call(*args: Any, **kwargs: Any) -> Any:
    return warns((DeprecationWarning, PendingDeprecationWarning, FutureWarning), *args, **kwargs)


# --------------------------------------------------------------------------------------------- approx


class ApproxBase:
    """pytest.approx's semantics: rel 1e-6 and abs 1e-12 by default, the larger tolerance wins; an `abs` given
    alone disables the relative one; non-numbers compare exactly; NaN equals NaN only with nan_ok."""

    __array_ufunc__ = None
    __array_priority__ = 100
    __hash__ = None

    def __init__(self, expected: Any, rel: Any = None, abs: Any = None, nan_ok: bool = False) -> None:
        self.expected, self.rel, self.abs, self.nan_ok = expected, rel, abs, nan_ok

    def _scalar(self, x: Any) -> ApproxScalar:
        return ApproxScalar(x, rel=self.rel, abs=self.abs, nan_ok=self.nan_ok)

    def __ne__(self, actual: Any) -> bool:
        return not (actual == self)

    def __bool__(self) -> bool:
        raise AssertionError(
            "approx() is not supported in a boolean context. Did you mean `assert a == approx(b)`?"
        )


def _is_bool(value: Any) -> bool:
    numpy = sys.modules.get("numpy")
    return isinstance(value, bool) or (numpy is not None and isinstance(value, numpy.bool_))


class ApproxScalar(ApproxBase):
    DEFAULT_ABS: Any = 1e-12
    DEFAULT_REL: Any = 1e-6

    @property
    def tolerance(self) -> Any:
        absolute = self.abs if self.abs is not None else self.DEFAULT_ABS
        if absolute < 0 or absolute != absolute:
            raise ValueError(f"absolute tolerance can't be negative or NaN: {absolute}")
        if self.rel is None and self.abs is not None:
            return absolute
        relative = (self.rel if self.rel is not None else self.DEFAULT_REL) * abs(self.expected)
        if relative < 0 or relative != relative:
            raise ValueError(f"relative tolerance can't be negative or NaN: {relative}")
        return max(relative, absolute)

    def __eq__(self, actual: Any) -> bool:
        array = _as_numpy_array(actual)
        if array is not None:
            return all(self == a for a in array.flat)
        if _is_bool(self.expected) and not _is_bool(actual):
            return False
        if actual == self.expected:
            return True
        if _is_bool(self.expected) or not (
            isinstance(self.expected, Complex | Decimal) and isinstance(actual, Complex | Decimal)
        ):
            return False
        if math.isnan(abs(self.expected)):
            return self.nan_ok and math.isnan(abs(actual))
        if math.isinf(abs(self.expected)):
            return False
        return bool(abs(self.expected - actual) <= self.tolerance)

    __hash__ = None

    def __repr__(self) -> str:
        if _is_bool(self.expected) or not isinstance(self.expected, Complex | Decimal):
            return str(self.expected)
        if math.isinf(abs(self.expected)):
            return str(self.expected)
        try:
            tol = self.tolerance
            shown = f"{tol:n}" if 1e-3 <= tol < 1e3 else f"{tol:.1e}"
        except ValueError:
            shown = "???"
        return f"{self.expected} ± {shown}"


class ApproxDecimal(ApproxScalar):
    DEFAULT_ABS = Decimal("1e-12")
    DEFAULT_REL = Decimal("1e-6")


class ApproxMapping(ApproxBase):
    def __eq__(self, actual: Any) -> bool:
        try:
            if set(actual.keys()) != set(self.expected.keys()):
                return False
        except AttributeError:
            return False
        return all(actual[k] == _approx_of(self, v) for k, v in self.expected.items())

    def __repr__(self) -> str:
        return f"approx({ {k: _approx_of(self, v) for k, v in self.expected.items()}!r})"


class ApproxSequence(ApproxBase):
    def __eq__(self, actual: Any) -> bool:
        try:
            if len(actual) != len(self.expected):
                return False
        except TypeError:
            return False
        return all(a == _approx_of(self, x) for a, x in zip(actual, self.expected, strict=True))

    def __repr__(self) -> str:
        kind = type(self.expected) if type(self.expected) in (list, tuple) else list
        return f"approx({kind(_approx_of(self, x) for x in self.expected)!r})"


def _approx_of(parent: ApproxBase, x: Any) -> ApproxScalar:
    cls = ApproxDecimal if isinstance(x, Decimal) else ApproxScalar
    return cls(x, rel=parent.rel, abs=parent.abs, nan_ok=parent.nan_ok)


def _as_numpy_array(obj: Any) -> Any:
    numpy = sys.modules.get("numpy")
    if numpy is None or isinstance(obj, str | bytes):
        return None
    if isinstance(obj, numpy.ndarray):
        return obj
    return None


def approx(expected: Any, rel: Any = None, abs: Any = None, nan_ok: bool = False) -> ApproxBase:
    if isinstance(expected, Decimal):
        return ApproxDecimal(expected, rel, abs, nan_ok)
    if isinstance(expected, Mapping):
        for key, value in expected.items():
            if isinstance(value, Mapping):
                raise TypeError(f"pytest.approx() does not support nested dictionaries: key={key!r}")
        return ApproxMapping(expected, rel, abs, nan_ok)
    array = _as_numpy_array(expected)
    if array is not None:
        return ApproxSequence(list(array.flat), rel, abs, nan_ok)
    if (
        hasattr(expected, "__getitem__")
        and hasattr(expected, "__len__")
        and not isinstance(expected, str | bytes)
    ):
        for index, x in enumerate(expected):
            if isinstance(x, type(expected)):
                raise TypeError(
                    f"pytest.approx() does not support nested data structures: {x!r} at index {index}"
                )
        return ApproxSequence(expected, rel, abs, nan_ok)
    if isinstance(expected, set | frozenset):
        raise TypeError(f"pytest.approx() only supports ordered sequences, but got: {expected!r}")
    return ApproxScalar(expected, rel, abs, nan_ok)


APPROX_TYPES = (ApproxScalar, ApproxDecimal, ApproxMapping, ApproxSequence)


def api() -> types.ModuleType:
    """The module tests get for `import pytest`."""
    module = types.ModuleType("pytest", "The sandbox's subset of pytest's API (see sandbox/pytest_style.py).")
    for name in (
        "approx", "raises", "warns", "deprecated_call", "mark", "param", "fixture", "yield_fixture", "fail",
        "skip", "xfail", "importorskip", "main", "Mark", "MarkDecorator", "ExceptionInfo", "Failed", "Skipped",
        "WarningsRecorder", "UnsupportedPytestFeature", "__version__",
    ):  # fmt: skip
        setattr(module, name, globals()[name])
    module.fail.Exception = Failed
    module.skip.Exception = Skipped
    module.xfail.Exception = XFailed
    module.MonkeyPatch = MonkeyPatch
    module.CaptureFixture = CaptureFixture
    return module


# ------------------------------------------------------------------------------------ builtin fixtures


class CaptureResult(NamedTuple):
    out: str
    err: str


class CaptureFixture:
    """`capsys`/`capfd`: what the test and the code print to sys.stdout/sys.stderr while the fixture is active.

    `capfd` is the same capture (Python-level writes; not output written to the descriptors directly).
    Output that a judge collects from the code's process is added through `extra_output`.
    """

    extra_output: list[Callable[[], tuple[str, str]]] = []  # set by the judge; empty when run in-process

    def __init__(self) -> None:
        self._out, self._err = io.StringIO(), io.StringIO()
        self._saved: tuple | None = None

    def _start(self) -> None:
        self._saved = (sys.stdout, sys.stderr)
        sys.stdout, sys.stderr = self._out, self._err

    def _stop(self) -> None:
        if self._saved is not None:
            sys.stdout, sys.stderr = self._saved
            self._saved = None

    def readouterr(self) -> CaptureResult:
        for drain in self.extra_output:
            out, err = drain()
            self._out.write(out)
            self._err.write(err)
        out, err = self._out.getvalue(), self._err.getvalue()
        self._out.seek(0), self._out.truncate(), self._err.seek(0), self._err.truncate()
        return CaptureResult(out, err)

    @contextlib.contextmanager
    def disabled(self) -> Iterator[None]:
        saved = (sys.stdout, sys.stderr)
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        try:
            yield
        finally:
            sys.stdout, sys.stderr = saved


_NOT_SET = object()


class MonkeyPatch:
    """pytest's monkeypatch: every change is undone when the test ends."""

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []
        self._cwd: str | None = None

    @classmethod
    @contextlib.contextmanager
    def context(cls) -> Iterator[MonkeyPatch]:
        patch = cls()
        try:
            yield patch
        finally:
            patch.undo()

    @staticmethod
    def _resolve(dotted: str) -> tuple[Any, str]:
        if "." not in dotted:
            raise TypeError(f"must be absolute import path string, not {dotted!r}")
        module_name, attr = dotted.rsplit(".", 1)
        parts = module_name.split(".")
        target = __import__(parts[0])
        for i, part in enumerate(parts[1:], 1):
            try:
                target = getattr(target, part)
            except AttributeError:
                target = __import__(".".join(parts[: i + 1]), fromlist=[part])
        return target, attr

    def setattr(self, target: Any, name: Any, value: Any = _NOT_SET, raising: bool = True) -> None:
        if value is _NOT_SET:
            if not isinstance(target, str):
                raise TypeError("use setattr(target, name, value) or setattr('module.attr', value)")
            value = name
            target, name = self._resolve(target)
        old = getattr(target, name, _NOT_SET)
        if raising and old is _NOT_SET:
            raise AttributeError(f"{target!r} has no attribute {name!r}")
        if inspect.isclass(target):
            old = target.__dict__.get(name, _NOT_SET)  # keep descriptors (staticmethod, ...) as they were
        setattr(target, name, value)
        self._undo.append(
            (lambda: delattr(target, name)) if old is _NOT_SET else (lambda: setattr(target, name, old))
        )

    def delattr(self, target: Any, name: Any = _NOT_SET, raising: bool = True) -> None:
        if name is _NOT_SET:
            target, name = self._resolve(target)
        if not hasattr(target, name):
            if raising:
                raise AttributeError(name)
            return
        old = (
            target.__dict__.get(name, getattr(target, name))
            if inspect.isclass(target)
            else getattr(target, name)
        )
        delattr(target, name)
        self._undo.append(lambda: setattr(target, name, old))

    def setitem(self, dic: Any, name: Any, value: Any) -> None:
        old = dic.get(name, _NOT_SET) if hasattr(dic, "get") else dic[name]
        dic[name] = value
        self._undo.append(
            (lambda: dic.pop(name, None)) if old is _NOT_SET else (lambda: dic.__setitem__(name, old))
        )

    def delitem(self, dic: Any, name: Any, raising: bool = True) -> None:
        if name not in dic:
            if raising:
                raise KeyError(name)
            return
        old = dic.pop(name)
        self._undo.append(lambda: dic.__setitem__(name, old))

    def setenv(self, name: str, value: Any, prepend: str | None = None) -> None:
        value = str(value)
        if prepend and name in os.environ:
            value = value + prepend + os.environ[name]
        self.setitem(os.environ, name, value)

    def delenv(self, name: str, raising: bool = True) -> None:
        self.delitem(os.environ, name, raising)

    def syspath_prepend(self, path: Any) -> None:
        saved = list(sys.path)
        sys.path.insert(0, str(path))
        self._undo.append(lambda: sys.path.__setitem__(slice(None), saved))

    def chdir(self, path: Any) -> None:
        if self._cwd is None:
            self._cwd = os.getcwd()
        os.chdir(path)

    def undo(self) -> None:
        while self._undo:
            self._undo.pop()()
        if self._cwd is not None:
            os.chdir(self._cwd)
            self._cwd = None


class TempPathFactory:
    def __init__(self, base: Path) -> None:
        self._base = base
        self._count = itertools.count()

    def getbasetemp(self) -> Path:
        return self._base

    def mktemp(self, basename: str, numbered: bool = True) -> Path:
        path = self._base / (f"{basename}{next(self._count)}" if numbered else basename)
        path.mkdir(mode=TMP_MODE)
        return path


# The judge raises this so that the code, another uid, can use the directories the tests make (see judge.py).
TMP_MODE = 0o700


class LocalPath(os.PathLike):
    """The few methods of py.path.local that tests use on `tmpdir`."""

    def __init__(self, path: Any) -> None:
        self.strpath = os.fspath(path)

    def __fspath__(self) -> str:
        return self.strpath

    def __str__(self) -> str:
        return self.strpath

    def __repr__(self) -> str:
        return f"local({self.strpath!r})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, str | os.PathLike) and os.fspath(other) == self.strpath

    def __hash__(self) -> int:
        return hash(self.strpath)

    def __truediv__(self, other: Any) -> LocalPath:
        return self.join(other)

    @property
    def basename(self) -> str:
        return os.path.basename(self.strpath)

    @property
    def dirname(self) -> str:
        return os.path.dirname(self.strpath)

    def join(self, *parts: Any) -> LocalPath:
        return LocalPath(os.path.join(self.strpath, *map(str, parts)))

    def mkdir(self, *parts: Any) -> LocalPath:
        path = self.join(*parts)
        os.mkdir(path.strpath)
        return path

    def ensure(self, *parts: Any, dir: bool = False) -> LocalPath:
        path = self.join(*parts)
        if dir:
            os.makedirs(path.strpath, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(path.strpath), exist_ok=True)
            open(path.strpath, "a").close()
        return path

    def write(self, data: Any, mode: str = "w") -> None:
        if isinstance(data, bytes) and "b" not in mode:
            mode += "b"
        with open(self.strpath, mode) as f:
            f.write(data)

    def write_text(self, data: str, encoding: str = "utf-8") -> None:
        with open(self.strpath, "w", encoding=encoding) as f:
            f.write(data)

    def read(self, mode: str = "r") -> Any:
        with open(self.strpath, mode) as f:
            return f.read()

    def read_text(self, encoding: str = "utf-8") -> str:
        with open(self.strpath, encoding=encoding) as f:
            return f.read()

    def open(self, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        return open(self.strpath, mode, *args, **kwargs)

    def exists(self) -> bool:
        return os.path.exists(self.strpath)

    def isfile(self) -> bool:
        return os.path.isfile(self.strpath)

    def isdir(self) -> bool:
        return os.path.isdir(self.strpath)

    def listdir(self) -> list[LocalPath]:
        return [self.join(name) for name in sorted(os.listdir(self.strpath))]

    def remove(self) -> None:
        if os.path.isdir(self.strpath):
            import shutil

            shutil.rmtree(self.strpath)
        else:
            os.remove(self.strpath)


class FixtureRequest:
    def __init__(self, item: TestItem, session: _Session) -> None:
        self._item, self._session = item, session
        self.param: Any = None
        self.param_index = 0
        self.fixturename: str | None = None
        self.scope = "function"

    @property
    def node(self) -> Any:
        return types.SimpleNamespace(
            name=self._item.id, nodeid=self._item.id, get_closest_marker=self._marker
        )

    def _marker(self, name: str) -> Mark | None:
        return next((m for m in self._item.marks if m.name == name), None)

    @property
    def function(self) -> Callable:
        return self._item.function

    @property
    def cls(self) -> type | None:
        return self._item.cls

    @property
    def instance(self) -> Any:
        return self._session.instance

    @property
    def module(self) -> types.ModuleType:
        return self._session.module

    @property
    def config(self) -> Any:
        raise UnsupportedPytestFeature("request.config")

    def addfinalizer(self, finalizer: Callable[[], Any]) -> None:
        self._session.finalizers["function"].append(finalizer)

    def getfixturevalue(self, name: str) -> Any:
        return self._session.fixture_value(name, self._item, self)


BUILTIN_FIXTURES = ("tmp_path", "tmp_path_factory", "tmpdir", "tmpdir_factory", "capsys", "capfd", "monkeypatch",
                    "recwarn", "request")  # fmt: skip
UNSUPPORTED_FIXTURES = ("caplog", "capsysbinary", "capfdbinary", "pytestconfig", "cache", "doctest_namespace",
                        "record_property", "record_testsuite_property", "record_xml_attribute", "testdir",
                        "pytester", "mocker")  # fmt: skip


# ------------------------------------------------------------------------------------------ collection


@dataclass
class TestItem:
    id: str  # as pytest names it in the module: "test_add[1-2]", "TestAdd::test_neg"
    base: (
        str  # the id of the function it comes from (before parametrization): "test_add", "TestAdd::test_neg"
    )
    function: Callable
    cls: type | None
    params: dict[str, Any]  # argument name -> value, from parametrize marks
    fixture_params: dict[str, tuple[int, Any]]  # fixture name -> (index, value), from fixtures with `params`
    marks: list[Mark]
    name: str = ""  # the attribute that holds the test function in its module or class
    argnames: tuple[str, ...] = ()  # the arguments the test takes (fixtures or parametrized values)
    unittest_case: unittest.TestCase | None = None


def _id_for(value: Any, argname: str, index: int) -> str:
    if isinstance(value, str):
        return value.encode("unicode_escape").decode("ascii")
    if isinstance(value, bytes):
        return value.decode("ascii", "backslashreplace")
    if value is None or isinstance(value, int | float | complex | bool):
        return str(value)
    if isinstance(value, re.Pattern):
        return value.pattern
    if inspect.isclass(value) or inspect.isfunction(value):
        return getattr(value, "__name__", f"{argname}{index}")
    return f"{argname}{index}"


def _argnames(spec: Any) -> list[str]:
    if isinstance(spec, str):
        return [n.strip() for n in spec.split(",") if n.strip()]
    return list(spec)


def _expand_parametrize(mark_: Mark) -> tuple[list[str], list[tuple[str, tuple, tuple]]]:
    """(argument names, [(id, values, marks)]) for one parametrize mark."""
    if mark_.kwargs.get("indirect"):
        raise UnsupportedPytestFeature("parametrize(indirect=...)")
    args = list(mark_.args)
    names = _argnames(args[0] if args else mark_.kwargs["argnames"])
    values = list(args[1] if len(args) > 1 else mark_.kwargs["argvalues"])
    ids = mark_.kwargs.get("ids", args[2] if len(args) > 2 else None)
    sets = []
    for index, value in enumerate(values):
        if isinstance(value, ParameterSet):
            row, marks_, explicit = value.values, value.marks, value.id
        else:
            row, marks_, explicit = ((value,) if len(names) == 1 else tuple(value)), (), None
        if len(row) != len(names):
            raise TypeError(f"parametrize: {names} needs {len(names)} values, got {row!r}")
        given = None
        if explicit is not None:
            given = explicit
        elif callable(ids):
            parts = [ids(v) for v in row]
            given = "-".join(
                _id_for(v, n, index) if p is None else str(p)
                for p, v, n in zip(parts, row, names, strict=True)
            )
        elif ids is not None and index < len(ids) and ids[index] is not None:
            given = str(ids[index])
        sets.append(
            (given or "-".join(_id_for(v, n, index) for v, n in zip(row, names, strict=True)), row, marks_)
        )
    seen: dict[str, int] = {}
    for s in sets:
        seen[s[0]] = seen.get(s[0], 0) + 1
    counters: dict[str, int] = {}
    unique = []
    for ident, row, marks_ in sets:
        if seen[ident] > 1:
            n = counters.get(ident, 0)
            counters[ident] = n + 1
            ident = f"{ident}{n}"
        unique.append((ident, row, marks_))
    return names, unique


def _fixture_names(function: Callable, bound: bool) -> list[str]:
    try:
        sig = inspect.signature(function)
    except (TypeError, ValueError):
        return []
    names = [
        p.name
        for p in sig.parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is p.empty
    ]
    return names[1:] if bound and names else names


def _is_test_function(name: str, obj: Any, module_name: str) -> bool:
    target = obj.__func__ if isinstance(obj, staticmethod | classmethod) else obj
    return (
        name.startswith("test")
        and inspect.isfunction(target)
        and getattr(target, "_sandbox_fixture", None) is None
        and getattr(target, "__test__", True)
        and getattr(target, "__module__", None) == module_name
    )


def _collect_class(cls: type, module: types.ModuleType, module_marks: list[Mark]) -> list[TestItem]:
    if issubclass(cls, unittest.TestCase):
        return [
            TestItem(
                f"{cls.__name__}::{name}",
                f"{cls.__name__}::{name}",
                getattr(cls, name),
                cls,
                {},
                {},
                [],
                name,
                (),
                unittest_case=cls(name),
            )  # fmt: skip
            for name in unittest.TestLoader().getTestCaseNames(cls)
        ]
    if any("__init__" in vars(c) for c in cls.__mro__[:-1]) or not getattr(cls, "__test__", True):
        return []  # pytest does not collect a class with a constructor
    class_marks = _marks_of(cls)
    items: list[TestItem] = []
    seen = set()
    for klass in cls.__mro__[:-1]:
        for name, obj in vars(klass).items():
            if name in seen or not _is_test_function(name, obj, getattr(obj, "__module__", None)):
                continue
            seen.add(name)
            static = isinstance(obj, staticmethod)
            argnames = _fixture_names(obj.__func__ if static else obj, bound=not static)
            items += _items_for(
                f"{cls.__name__}::{name}", obj, cls, class_marks + module_marks, name, argnames
            )
    return items


def _items_for(
    base: str, function: Any, cls: type | None, outer_marks: list[Mark], name: str, argnames: tuple | list
) -> list[TestItem]:
    target = function.__func__ if isinstance(function, staticmethod | classmethod) else function
    marks = _marks_of(target) + outer_marks
    argnames = tuple(argnames)
    if inspect.iscoroutinefunction(target):
        error = Mark(
            "sandbox_error", (UnsupportedPytestFeature("async test functions (they need a plugin)"),)
        )
        return [TestItem(base, base, target, cls, {}, {}, marks + [error], name, argnames)]
    calls: list[tuple[str, dict, list]] = [("", {}, [])]
    for m in marks:
        if m.name != "parametrize":
            continue
        try:
            names, sets = _expand_parametrize(m)
            missing = [n for n in names if n not in argnames]
            if missing:
                raise TypeError(f"{base} uses no argument {missing[0]!r} given to parametrize")
        except Exception as exc:  # noqa: BLE001 - a collection error is this test's error
            return [
                TestItem(
                    base, base, target, cls, {}, {}, marks + [Mark("sandbox_error", (exc,))], name, argnames
                )
            ]
        if not sets:
            skipped = Mark("skip", (f"got empty parameter set {names}",))
            return [
                TestItem(
                    f"{base}[{'-'.join(names)}0]",
                    base,
                    target,
                    cls,
                    {},
                    {},
                    marks + [skipped],
                    name,
                    argnames,
                )
            ]
        calls = [
            (
                f"{prev}-{ident}" if prev else ident,
                {**params, **dict(zip(names, row, strict=True))},
                extra + list(mk),
            )
            for prev, params, extra in calls
            for ident, row, mk in sets
        ]
    return [
        TestItem(
            f"{base}[{ident}]" if ident else base,
            base,
            target,
            cls,
            params,
            {},
            marks + extra,
            name,
            argnames,
        )
        for ident, params, extra in calls
    ]


def collect(module: types.ModuleType) -> list[TestItem]:
    """The module's tests in definition order, parametrized as pytest would; fixture params are added later."""
    module_marks = _marks_of(module)
    items: list[TestItem] = []
    for name, obj in list(vars(module).items()):
        if inspect.isclass(obj) and (name.startswith("Test") or issubclass(obj, unittest.TestCase)):
            if getattr(obj, "__module__", None) == module.__name__:
                items += _collect_class(obj, module, module_marks)
        elif _is_test_function(name, obj, module.__name__):
            items += _items_for(name, obj, None, module_marks, name, _fixture_names(obj, bound=False))
    return items


# ------------------------------------------------------------------------------------------------ run


def _fixture_defs(scope_obj: Any) -> dict[str, FixtureSpec]:
    found = {}
    for value in vars(scope_obj).values():
        target = value.__func__ if isinstance(value, staticmethod | classmethod) else value
        spec = getattr(target, "_sandbox_fixture", None)
        if isinstance(spec, FixtureSpec):
            found[spec.name] = spec
    return found


class _Session:
    """Fixture state for one module run: cached values and finalizers by scope."""

    def __init__(self, module: types.ModuleType, tmp_base: Path) -> None:
        self.module = module
        self.module_fixtures = _fixture_defs(module)
        self.tmp_factory = TempPathFactory(tmp_base)
        self.cache: dict[tuple[str, str], Any] = {}  # (scope, fixture name and param index) -> value
        self.finalizers: dict[str, list[Callable]] = {s: [] for s in SCOPES}
        self.instance: Any = None
        self.current_class: type | None = None
        self.untrusted_file: str | None = None

    def defs_for(self, item: TestItem) -> dict[str, FixtureSpec]:
        defs = dict(self.module_fixtures)
        if item.cls is not None:
            for klass in reversed(item.cls.__mro__[:-1]):
                defs.update(_fixture_defs(klass))
        return defs

    def fixture_args(self, spec: FixtureSpec, item: TestItem) -> list[str]:
        in_class = spec.name not in self.module_fixtures or self.module_fixtures[spec.name] is not spec
        return _fixture_names(spec.function, bound=in_class and item.cls is not None)

    def finish(self, scope: str) -> list[BaseException]:
        """Run the finalizers of `scope` and every narrower scope, newest first; the errors they raised."""
        errors = []
        for s in SCOPES[: SCOPES.index(scope) + 1]:
            while self.finalizers[s]:
                try:
                    self.finalizers[s].pop()()
                except BaseException as exc:  # noqa: BLE001 - a teardown error is the test's error
                    errors.append(exc)
            for key in [k for k in self.cache if k[0] == s]:
                del self.cache[key]
        return errors

    def fixture_value(self, name: str, item: TestItem, request: FixtureRequest, chain: tuple = ()) -> Any:
        if name in item.params:
            return item.params[name]
        if name in chain:
            raise RecursionError(f"fixture {name!r} requests itself: {' -> '.join(chain + (name,))}")
        defs = self.defs_for(item)
        if name not in defs:
            return self._builtin(name, item, request)
        spec = defs[name]
        scope = "session" if spec.scope == "package" else spec.scope
        index = item.fixture_params.get(name, (None, None))[0]
        key = (scope, name if index is None else f"{name}[{index}]")
        if key in self.cache:
            return self.cache[key]
        sub = FixtureRequest(item, self)
        sub.fixturename, sub.scope = name, spec.scope
        if name in item.fixture_params:
            sub.param_index, sub.param = item.fixture_params[name]
        function = spec.function
        if item.cls is not None and self.module_fixtures.get(name) is not spec:
            owner = self.instance if self.instance is not None else item.cls
            function = function.__get__(owner, item.cls)
        kwargs = {
            arg: sub if arg == "request" else self.fixture_value(arg, item, sub, chain + (name,))
            for arg in _fixture_names(function, bound=False)
        }
        value = function(**kwargs)
        if inspect.isgenerator(value):
            generator = value
            value = next(generator)

            def finish_generator() -> None:
                try:
                    next(generator)
                except StopIteration:
                    return
                raise RuntimeError(f"fixture {name!r} yielded more than once")

            self.finalizers[scope].append(finish_generator)
        self.cache[key] = value
        return value

    def _builtin(self, name: str, item: TestItem, request: FixtureRequest) -> Any:
        key = ("function", name)
        if key in self.cache:
            return self.cache[key]
        if name == "request":
            return request
        if name in ("tmp_path", "tmpdir"):
            path = self.tmp_factory.mktemp(re.sub(r"\W", "_", item.id)[:30])
            value: Any = path if name == "tmp_path" else LocalPath(path)
        elif name == "tmp_path_factory":
            value = self.tmp_factory
        elif name == "tmpdir_factory":
            factory = self.tmp_factory
            value = types.SimpleNamespace(
                mktemp=lambda basename, numbered=True: LocalPath(factory.mktemp(basename, numbered)),
                getbasetemp=lambda: LocalPath(factory.getbasetemp()),
            )
        elif name in ("capsys", "capfd"):
            value = CaptureFixture()
            value._start()
            self.finalizers["function"].append(value._stop)
        elif name == "monkeypatch":
            value = MonkeyPatch()
            self.finalizers["function"].append(value.undo)
        elif name == "recwarn":
            value = WarningsRecorder()
            value.__enter__()
            self.finalizers["function"].append(lambda: value.__exit__(None, None, None))
        elif name in UNSUPPORTED_FIXTURES:
            raise UnsupportedPytestFeature(f"fixture {name!r}")
        else:
            raise LookupError(f"fixture {name!r} not found")
        self.cache[key] = value
        return value


def _requested(item: TestItem, defs: dict[str, FixtureSpec]) -> list[str]:
    """Fixtures a test needs, in pytest's order: autouse ones, then usefixtures marks, then its arguments."""
    names = [n for n, spec in defs.items() if spec.autouse]
    for m in item.marks:
        if m.name == "usefixtures":
            names += [n for n in m.args if n not in names]
    return names + [n for n in item.argnames if n not in names]


def _with_fixture_params(items: list[TestItem], session: _Session) -> list[TestItem]:
    """Parametrize tests over the `params` of the fixtures they use (directly or through other fixtures)."""
    out = []
    for item in items:
        if item.unittest_case is not None:
            out.append(item)
            continue
        defs = session.defs_for(item)
        wanted: list[str] = []
        pending = _requested(item, defs)
        while pending:
            name = pending.pop(0)
            if name in wanted or name in item.params:
                continue
            wanted.append(name)
            if name in defs:
                pending += session.fixture_args(defs[name], item)
        variants = [item]
        for name in wanted:
            spec = defs.get(name)
            if spec is None or spec.params is None:
                continue
            expanded = []
            for v in variants:
                for index, value in enumerate(spec.params):
                    extra_marks: tuple = ()
                    if isinstance(value, ParameterSet):
                        value, extra_marks = (value.values[0] if value.values else None), value.marks
                    if callable(spec.ids):
                        ident = spec.ids(value)
                    elif spec.ids is not None:
                        ident = spec.ids[index]
                    else:
                        ident = None
                    ident = str(ident) if ident is not None else _id_for(value, name, index)
                    inner = v.id[len(v.base) + 1 : -1] if v.id != v.base else ""
                    expanded.append(
                        TestItem(
                            f"{v.base}[{inner + '-' if inner else ''}{ident}]", v.base, v.function, v.cls,
                            v.params, {**v.fixture_params, name: (index, value)}, v.marks + list(extra_marks),
                            v.name, v.argnames,
                        )
                    )  # fmt: skip
            variants = expanded
        out += variants
    return out


def _condition(condition: Any) -> bool:
    if isinstance(condition, str):
        raise UnsupportedPytestFeature("string conditions in skipif/xfail marks")
    return bool(condition)


def _skip_reason(item: TestItem) -> str | None:
    for m in item.marks:
        if m.name == "skip":
            return str(m.kwargs.get("reason", m.args[0] if m.args else "unconditional skip"))
        if m.name == "skipif":
            conditions = m.args or (m.kwargs.get("condition", True),)
            if any(_condition(c) for c in conditions):
                return str(m.kwargs.get("reason", "condition was true"))
    return None


def _xfail_mark(item: TestItem) -> Mark | None:
    for m in item.marks:
        if m.name == "xfail" and _condition(m.args[0] if m.args else m.kwargs.get("condition", True)):
            return m
    return None


Record = Callable[[str, str, "BaseException | None"], None]


def run_module(
    module: types.ModuleType, record: Record, tmp_base: str | None = None, untrusted_file: str | None = None
) -> None:
    """Run the module's tests; `record(test_id, outcome, exception)` once per test, as each test ends.

    Outcomes: "ok" (passed, an expected failure, or a non-strict unexpected pass), "failed" (an assertion, a
    pytest.fail, a missing raise), "error" (anything else raised, in the test or its fixtures), "skipped".
    `untrusted_file`: code from that file (the solution, in-process) may not skip or xfail a test.
    """
    session = _Session(module, Path(tmp_base or tempfile.mkdtemp(prefix="pytest-")))
    session.untrusted_file = untrusted_file
    items = _with_fixture_params(collect(module), session)
    setup_module = getattr(module, "setup_module", None) or getattr(module, "setUpModule", None)
    if callable(setup_module):
        try:
            _call_xunit(setup_module, module)
        except BaseException as exc:  # noqa: BLE001 - every test of the module errors, as in pytest
            for item in items:
                record(item.id, "error", exc)
            return
    for item in items:
        if item.cls is not session.current_class:
            _leave_class(session, record)
            session.current_class = item.cls
            setup_class = getattr(item.cls, "setup_class", None) if item.unittest_case is None else None
            if callable(setup_class):
                try:
                    setup_class()
                except BaseException as exc:  # noqa: BLE001
                    record(item.id, "error", exc)
                    continue
        if item.unittest_case is not None:
            _run_unittest_case(item, record)
        else:
            _run_item(item, session, record)
    _leave_class(session, record)
    errors = session.finish("session")
    teardown_module = getattr(module, "teardown_module", None) or getattr(module, "tearDownModule", None)
    if callable(teardown_module):
        try:
            _call_xunit(teardown_module, module)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
    if errors:
        record("teardown_module", "error", errors[0])


def _call_xunit(function: Callable, arg: Any) -> None:
    try:
        takes = len(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        takes = 0
    function(arg) if takes else function()


def _leave_class(session: _Session, record: Record) -> None:
    cls = session.current_class
    if cls is None:
        return
    errors = session.finish("class")
    teardown_class = getattr(cls, "teardown_class", None)
    if callable(teardown_class) and not issubclass(cls, unittest.TestCase):
        try:
            teardown_class()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
    session.current_class = None
    if errors:
        record(f"{cls.__name__}::teardown_class", "error", errors[0])


def _run_item(item: TestItem, session: _Session, record: Record) -> None:
    error_mark = next((m for m in item.marks if m.name == "sandbox_error"), None)
    if error_mark is not None:
        record(item.id, "error", error_mark.args[0])
        return
    try:
        reason = _skip_reason(item)
        xfail_mark = _xfail_mark(item)
    except BaseException as exc:  # noqa: BLE001
        record(item.id, "error", exc)
        return
    if reason is not None:
        record(item.id, "skipped", None)
        return
    request = FixtureRequest(item, session)
    outcome, error, phase = "ok", None, "setup"
    try:
        if item.cls is not None:
            session.instance = item.cls()
            function = getattr(session.instance, item.name)
            hook = getattr(session.instance, "setup_method", None)
        else:
            function = item.function
            hook = getattr(session.module, "setup_function", None)
        if callable(hook):
            _call_xunit(hook, item.function)
        values = {
            name: session.fixture_value(name, item, request)
            for name in _requested(item, session.defs_for(item))
        }
        phase = "call"
        function(**{name: values[name] for name in item.argnames})
    except (XFailed, Skipped) as exc:
        outcome, error = ("ok" if isinstance(exc, XFailed) else "skipped"), exc
        if session.untrusted_file is not None and _raised_in(exc, session.untrusted_file):
            outcome, error = (
                "error",
                UnsupportedPytestFeature(f"{type(exc).__name__} raised from inside the code"),
            )
    except (AssertionError, Failed) as exc:
        outcome, error = ("failed" if phase == "call" else "error"), exc
    except BaseException as exc:  # noqa: BLE001 - any other exception is the test's error
        outcome, error = "error", exc
    if xfail_mark is not None and phase == "call" and outcome != "skipped":
        expected_types = xfail_mark.kwargs.get("raises")
        if outcome in ("failed", "error"):
            if expected_types is None or isinstance(error, expected_types):
                outcome, error = "ok", None
        elif xfail_mark.kwargs.get("strict"):
            outcome, error = "failed", Failed(f"[XPASS(strict)] {xfail_mark.kwargs.get('reason', '')}")
    owner = session.instance if session.instance is not None else session.module
    teardown = getattr(
        owner, "teardown_method" if session.instance is not None else "teardown_function", None
    )
    errors = session.finish("function")
    if callable(teardown):
        try:
            _call_xunit(teardown, item.function)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
    if errors and outcome in ("ok", "skipped"):
        outcome, error = "error", errors[0]
    session.instance = None
    record(item.id, outcome, None if outcome == "ok" else error)


def _raised_in(exc: BaseException, filename: str) -> bool:
    """Did the last frame outside this file that `exc` went through belong to `filename`?"""
    tb, last = exc.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename != __file__:
            last = tb.tb_frame.f_code.co_filename
        tb = tb.tb_next
    return last == filename


class _FirstOutcome(unittest.TestResult):
    """Keeps the first failure or error of a unittest.TestCase test, with its real exception."""

    def __init__(self) -> None:
        super().__init__()
        self.outcome: tuple[str, BaseException | None] = ("ok", None)

    def _keep(self, outcome: str, err: tuple) -> None:
        if self.outcome[0] == "ok":
            self.outcome = (outcome, err[1])

    def addFailure(self, test: Any, err: tuple) -> None:
        self._keep("failed", err)

    def addError(self, test: Any, err: tuple) -> None:
        self._keep("error", err)

    def addSubTest(self, test: Any, subtest: Any, err: tuple | None) -> None:
        if err is not None:
            self._keep("failed" if issubclass(err[0], test.failureException) else "error", err)

    def addSkip(self, test: Any, reason: str) -> None:
        if self.outcome[0] == "ok":
            self.outcome = ("skipped", None)

    def addUnexpectedSuccess(self, test: Any) -> None:
        self._keep("failed", (None, Failed("unexpected success"), None))


def _run_unittest_case(item: TestItem, record: Record) -> None:
    result = _FirstOutcome()
    item.unittest_case.run(result)
    record(item.id, *result.outcome)


def test_ids(source: str) -> set[str]:
    """The function-level ids (`TestItem.base`) a pytest module's source defines, found without running it.

    `test*` functions at module level and in `Test*` classes without `__init__` (following base classes in the
    module), and the `test*` methods of unittest.TestCase classes. A parametrized test runs under more ids;
    each id here must appear at least once (as itself or as `id[...]`).
    """
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}

    def base_names(node: ast.ClassDef) -> list[str]:
        return [ast.unparse(b).rsplit(".", 1)[-1] for b in node.bases]

    def methods(name: str, seen: frozenset = frozenset()) -> dict[str, ast.AST]:
        node = classes.get(name)
        if node is None or name in seen:
            return {}
        found: dict[str, ast.AST] = {}
        for base in reversed(base_names(node)):
            found.update(methods(base, seen | {name}))
        found.update({s.name: s for s in node.body if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef)})
        return found

    def is_test_case(name: str, seen: frozenset = frozenset()) -> bool:
        node = classes.get(name)
        if node is None or name in seen:
            return name.endswith("TestCase")
        return any(is_test_case(b, seen | {name}) for b in base_names(node))

    def is_fixture(node: ast.AST) -> bool:
        return any("fixture" in ast.unparse(d) for d in getattr(node, "decorator_list", []))

    ids = {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")
        and not is_fixture(node)
    }  # fmt: skip
    for name in classes:
        case = is_test_case(name)
        found = methods(name)
        if not (name.startswith("Test") or case) or (not case and "__init__" in found):
            continue
        ids |= {f"{name}::{m}" for m, node in found.items() if m.startswith("test") and not is_fixture(node)}
    return ids
