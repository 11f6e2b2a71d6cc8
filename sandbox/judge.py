"""The judge: runs the tests in a process of its own, as another uid than the solution, and writes the verdict.

The solution runs in the contestant's process (sandbox/contestant.py) and is reached only through the channel: a
name imported from `solution` is a handle, calling it is a request, and what comes back is plain data built by
this process's own builtins, or another handle. A handle equals only itself, has no order, and every other use
(attributes, len, iteration, arithmetic, str) is a request answered by the solution, exactly as the same use of the
solution's own object would be. Exceptions come back by class: builtin ones as the real classes, the solution's as
stand-in classes made here (subclasses of the builtin or standard-library bases they have), so `assertRaises` works
for both; an exception that could steer the test runner (unittest.SkipTest, pytest's outcomes) is never rebuilt as
one. Objects the tests pass to the solution (callbacks, a StringIO) stay here and are used by request; only their
public attributes can be read, so nothing of the tests' own namespaces is reachable from the solution.

Nothing the contestant sends is executed here, and the tests and their expected values never leave this process.
"""

from __future__ import annotations

import builtins
import json
import linecache
import marshal
import os
import sys
import types
import unittest
from typing import Any, NoReturn

from sandbox import channel as wire
from sandbox import outcomes, pytest_style
from sandbox.channel import Channel, Endpoint, PeerGone, ProtocolError
from sandbox.testcode import COUNT_NAME

_REAL_STDOUT, _REAL_STDERR = sys.stdout, sys.stderr
# Exceptions that steer unittest or pytest: an exception of the solution's is never rebuilt as one of these.
_CONTROL = (unittest.SkipTest, pytest_style.OutcomeException)
_CONTROL_MODULES = ("unittest", "sandbox", "_pytest", "pytest")
_JUDGE: Judge | None = None  # the one judge of this process


class ContestantGone(BaseException):
    """The solution's process ended (or broke the protocol) while the tests still needed it."""


def _judge() -> Judge:
    assert _JUDGE is not None
    return _JUDGE


class Handle:
    """An object of the solution's. Equal only to itself; every other use is a request to the contestant."""

    __slots__ = ("_sbx_ref", "_sbx_name", "__weakref__")

    def __init__(self, ref: int, name: str) -> None:
        object.__setattr__(self, "_sbx_ref", ref)
        object.__setattr__(self, "_sbx_name", name)

    def __getattr__(self, name: str) -> Any:
        return _judge().ask(["attr", {"h": self._sbx_ref}, name])

    def __setattr__(self, name: str, value: Any) -> None:
        _judge().ask(["setattr", {"h": self._sbx_ref}, name, _judge().encode(value)])

    def __delattr__(self, name: str) -> None:
        _judge().ask(["delattr", {"h": self._sbx_ref}, name])

    def __eq__(self, other: Any) -> bool:
        return self is other

    def __ne__(self, other: Any) -> bool:
        return self is not other

    def __hash__(self) -> int:
        return object.__hash__(self)

    def __lt__(self, other: Any) -> Any:
        return NotImplemented

    __le__ = __gt__ = __ge__ = __lt__

    def __bool__(self) -> bool:
        return _as(bool, _judge().op("bool", self))

    def __len__(self) -> int:
        return _judge().op("len", self)

    def __iter__(self) -> Any:
        return RemoteIterator(_judge().op("iter", self))

    def __next__(self) -> Any:
        return _judge().op("next", self)

    def __reversed__(self) -> Any:
        return RemoteIterator(_judge().op("reversed", self))

    def __getitem__(self, key: Any) -> Any:
        return _judge().op("getitem", self, key)

    def __setitem__(self, key: Any, value: Any) -> None:
        _judge().op("setitem", self, key, value)

    def __delitem__(self, key: Any) -> None:
        _judge().op("delitem", self, key)

    def __contains__(self, item: Any) -> bool:
        return _as(bool, _judge().op("contains", self, item))

    def __str__(self) -> str:
        return _as(str, _judge().op("str", self))

    def __repr__(self) -> str:
        try:
            return _as(str, _judge().op("repr", self))
        except BaseException:  # noqa: BLE001 - a failure message must still be made
            return f"<solution object {self._sbx_name}>"

    def __format__(self, spec: str) -> str:
        return _as(str, _judge().op("format", self, spec))

    def __int__(self) -> int:
        return _as(int, _judge().op("int", self))

    def __float__(self) -> float:
        return _as(float, _judge().op("float", self))

    def __complex__(self) -> complex:
        return _as(complex, _judge().op("complex", self))

    def __index__(self) -> int:
        return _as(int, _judge().op("index", self))

    def __abs__(self) -> Any:
        return _judge().op("abs", self)

    def __neg__(self) -> Any:
        return _judge().op("neg", self)

    def __pos__(self) -> Any:
        return _judge().op("pos", self)

    def __invert__(self) -> Any:
        return _judge().op("invert", self)

    def __round__(self, ndigits: Any = None) -> Any:
        return _judge().op("round", self) if ndigits is None else _judge().op("round", self, ndigits)

    def __trunc__(self) -> Any:
        return _judge().op("trunc", self)

    def __floor__(self) -> Any:
        return _judge().op("floor", self)

    def __ceil__(self) -> Any:
        return _judge().op("ceil", self)

    def __enter__(self) -> Any:
        return _judge().op("enter", self)

    def __exit__(self, *exc: Any) -> Any:
        exc_type = (
            exc[0]
            if exc and isinstance(exc[0], type) and getattr(builtins, exc[0].__name__, None) is exc[0]
            else None
        )
        return _judge().op("exit", self, exc_type, None, None)

    def __dir__(self) -> list[str]:
        return list(_judge().op("dir", self))

    def __copy__(self) -> Any:
        return _judge().op("copy", self)

    def __deepcopy__(self, memo: Any) -> Any:
        return _judge().op("deepcopy", self)

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError("an object of the solution's cannot be pickled by the tests")


def _binary(name: str, reflected: bool) -> Any:
    def method(self: Handle, other: Any) -> Any:
        return _judge().op(name, other, self) if reflected else _judge().op(name, self, other)

    return method


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "lshift", "rshift", "and_", "or_", "xor",
              "matmul"):  # fmt: skip
    _dunder = _name.rstrip("_")
    setattr(Handle, f"__{_dunder}__", _binary(_name, False))
    setattr(Handle, f"__r{_dunder}__", _binary(_name, True))


class CallableHandle(Handle):
    __slots__ = ()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _judge().call(self, args, kwargs)


class ClassHandle(CallableHandle):
    """A class of the solution's: `isinstance(x, solution.Point)` asks the contestant."""

    __slots__ = ()

    def __instancecheck__(self, obj: Any) -> bool:
        return _as(bool, _judge().op("isinstance", obj, self))

    def __subclasscheck__(self, cls: Any) -> bool:
        return _as(bool, _judge().op("issubclass", cls, self))

    def __mro_entries__(self, bases: tuple) -> tuple:
        raise TypeError("a test class cannot subclass a class of the solution's in the judge mode")


class RemoteIterator:
    """Iterates over an iterator of the solution's, fetching items in growing batches (1, 2, 4, ... 1024)."""

    def __init__(self, iterator: Any) -> None:
        self.iterator, self.items, self.size, self.done = iterator, [], 1, False

    def __iter__(self) -> RemoteIterator:
        return self

    def __next__(self) -> Any:
        if not self.items:
            if self.done:
                raise StopIteration
            if not isinstance(self.iterator, Handle):  # the solution's __iter__ returned plain data
                self.items, self.done = list(self.iterator), True
            else:
                batch = _judge().op("batch", self.iterator, self.size)
                if not (type(batch) is list and len(batch) == 2 and type(batch[0]) is list):
                    raise ContestantGone(_judge().broken("a malformed batch of items"))
                self.items, self.done = batch[0][::-1], bool(batch[1])
                self.size = min(self.size * 2, 1024)
            if not self.items:
                raise StopIteration
        return self.items.pop()


def _as(kind: type, value: Any) -> Any:
    if type(value) is not kind and not (kind is float and type(value) is int):
        raise TypeError(f"the solution returned {type(value).__name__} where {kind.__name__} is required")
    return value


class RemoteModule(types.ModuleType):
    """`sys.modules["solution"]` in the judge: every attribute is read from the solution's module."""

    def __init__(self, name: str, handle: Handle, public: list[str]) -> None:
        super().__init__(name)
        self.__dict__["_sbx_handle"] = handle
        self.__dict__["_sbx_public"] = public
        self.__dict__["__file__"] = f"{name}.py"

    def __getattr__(self, name: str) -> Any:
        if name == "__all__":
            return list(self.__dict__["_sbx_public"])
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return getattr(self.__dict__["_sbx_handle"], name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("__") and name.endswith("__"):
            self.__dict__[name] = value
        else:
            setattr(self.__dict__["_sbx_handle"], name, value)

    def __delattr__(self, name: str) -> None:
        delattr(self.__dict__["_sbx_handle"], name)

    def __dir__(self) -> list[str]:
        return list(self.__dict__["_sbx_public"])


def _update_in_place(old: Any, new: Any) -> None:
    """Give the tests' own argument `old` the contents the solution left in its copy (`new`)."""
    if type(old) is list and type(new) is list:
        if len(old) == len(new):
            for i, (a, b) in enumerate(zip(old, new, strict=True)):
                if type(a) is type(b) and type(a) in (list, dict, set, bytearray):
                    _update_in_place(a, b)
                else:
                    old[i] = b
        else:
            old[:] = new
    elif type(old) is dict and type(new) is dict:
        for key in [k for k in old if k not in new]:
            del old[key]
        for key, value in new.items():
            if key in old and type(old[key]) is type(value) and type(value) in (list, dict, set, bytearray):
                _update_in_place(old[key], value)
            else:
                old[key] = value
    elif type(old) is set and type(new) is set:
        old.clear()
        old |= new
    elif type(old) is bytearray and type(new) is bytearray:
        old[:] = new


class Judge(Endpoint):
    def __init__(self, channel: Channel) -> None:
        super().__init__(channel)
        self.handles: dict[int, Handle] = {}
        self.standins: dict[int, type] = {}  # the solution's exception class (reference) -> stand-in
        self.standin_refs: dict[type, int] = {}
        self.views: dict[type, type] = {}
        self.gone = False
        self.protocol_error: str | None = None
        # Assertions that failed in the tests' own callbacks while the solution called them: the test fails even
        # if the solution caught the error (it could otherwise probe a callback that checks its answer).
        self.callback_failures: list[BaseException] = []

    def broken(self, why: str) -> str:
        if self.protocol_error is None:
            self.protocol_error = why
        return why

    # -- requests to the contestant

    def request(self, message: list) -> list:
        if self.gone or self.protocol_error is not None:
            raise ContestantGone("the solution's process is no longer available")
        try:
            return super().request(message)
        except PeerGone:
            self.gone = True
            raise ContestantGone("the solution's process ended") from None
        except ProtocolError as exc:
            raise ContestantGone(self.broken(str(exc))) from None

    def _capturing(self) -> bool:
        return sys.stdout is not _REAL_STDOUT or sys.stderr is not _REAL_STDERR

    def _finish(self, reply: list, captured_at: int) -> None:
        if len(reply) > captured_at and self._capturing():
            captured = reply[captured_at]
            if type(captured) is list and len(captured) == 2 and all(type(c) is str for c in captured):
                sys.stdout.write(captured[0])
                sys.stderr.write(captured[1])

    def ask(self, message: list) -> Any:
        reply = self.request(message)
        return reply[1] if len(reply) > 1 else None

    def op(self, name: str, *args: Any) -> Any:
        reply = self.request(["op", name, [self.encode(a) for a in args], self._capturing()])
        self._finish(reply, 2)
        return reply[1] if len(reply) > 1 else None

    def call(self, target: Handle, args: tuple, kwargs: dict) -> Any:
        message = [
            "call",
            {"h": target._sbx_ref},
            self.encode(list(args)),
            self.encode(kwargs),
            self._capturing(),
        ]
        reply = self.request(message)
        changed = reply[2] if len(reply) > 2 else []
        if type(changed) is not list:
            raise ContestantGone(self.broken("bad list of changed arguments"))
        for entry in changed:
            if not (type(entry) is list and len(entry) == 2):
                raise ContestantGone(self.broken("bad changed argument"))
            where, value = entry
            old = (
                args[where]
                if type(where) is int and 0 <= where < len(args)
                else kwargs.get(where)
                if type(where) is str
                else None
            )
            if old is not None:
                _update_in_place(old, value)
        self._finish(reply, 3)
        return reply[1] if len(reply) > 1 else None

    # -- values out (the tests' arguments)

    def encode(self, value: Any) -> Any:
        return wire.encode(value, self._reference)

    def _reference(self, value: Any, depth: int) -> dict:
        if isinstance(value, Handle):
            return {"h": value._sbx_ref}
        if isinstance(value, type) and value in self.standin_refs:
            return {"h": self.standin_refs[value]}  # a stand-in goes back as the solution's own class
        if type(value) in self.views.values():
            return {
                "h": value.__dict__["_sbx_ref"]
            }  # a view of the solution's object goes back as that object
        if (
            isinstance(value, type)
            and issubclass(value, BaseException)
            and getattr(builtins, value.__name__, None) is value
        ):
            return {"bx": value.__name__}
        name = getattr(value, "__name__", None)
        if isinstance(name, str) and getattr(builtins, name, None) is value:
            return {"r": name}
        if isinstance(value, types.ModuleType) and value.__name__.split(".", 1)[0] in sys.stdlib_module_names:
            return {"mod": value.__name__}
        contents = wire.view_contents(value)
        if contents is not None and depth < wire.MAX_DEPTH:
            base, plain = contents
            return {"v": base, "x": wire.encode(plain, self._reference, depth + 1), "j": self.export(value)}
        if depth >= wire.MAX_DEPTH and type(value) in (list, tuple, dict, set, frozenset):
            raise ValueError(f"an argument nested deeper than {wire.MAX_DEPTH} levels cannot be sent")
        return {"j": self.export(value), "k": "f" if callable(value) else "o"}

    # -- values in (what the solution sends)

    def hook(self, obj: dict) -> Any:
        plain = wire.decode_plain(obj)
        if plain is not NotImplemented:
            return plain
        if "v" in obj:
            base = wire.VIEW_BASES.get(obj["v"])
            ref = obj.get("h")
            if base is None or type(ref) is not int:
                raise ProtocolError("bad view")
            cls = self.views.get(base) or self.views.setdefault(base, wire.view_class(base, self._attr_of))
            contents = obj.get("x")
            if (
                base in (int, float, complex, str, bytes)
                and type(contents) is not base
                and not (base is float and type(contents) is int)
            ):
                raise ProtocolError(f"a {base.__name__} view of a {type(contents).__name__}")
            try:
                return wire.make_view(cls, base, contents, ref)
            except TypeError as exc:
                raise ProtocolError(f"bad view contents: {exc}") from None
        if "h" in obj:
            ref = obj["h"]
            if type(ref) is not int:
                raise ProtocolError("bad reference")
            handle = self.handles.get(ref)
            if handle is None:
                kind, name = obj.get("k"), obj.get("n")
                cls = {"c": ClassHandle, "f": CallableHandle}.get(kind, Handle)
                handle = self.handles[ref] = cls(ref, name if type(name) is str else "object")
            return handle
        if "j" in obj:
            ref = obj["j"]
            if ref not in self.objects:
                raise ProtocolError("a reference to no object of the judge's")
            return self.objects[ref]
        if "e" in obj or "bx" in obj:
            return self.exception_class(obj)
        if "r" in obj:
            value = getattr(builtins, obj["r"], None) if type(obj["r"]) is str else None
            if value is None or obj["r"].startswith("_"):
                raise ProtocolError("a reference to no builtin")
            return value
        if "mod" in obj:
            module = sys.modules.get(obj["mod"]) if type(obj["mod"]) is str else None
            if module is not None:
                return module  # the judge's own copy of a standard-library module the solution imported
            return self.hook({"h": obj.get("h"), "k": "o", "n": "module"})
        raise ProtocolError(f"unknown value {sorted(obj)}")

    def _attr_of(self, ref: int, name: str) -> Any:
        return self.ask(["attr", {"h": ref}, name])

    def exception_class(self, desc: Any) -> type:
        """The class for an exception class of the solution's: a builtin itself, else a stand-in made here."""
        if type(desc) is not dict:
            raise ProtocolError("bad exception class")
        if "bx" in desc:
            cls = getattr(builtins, desc["bx"], None) if type(desc["bx"]) is str else None
            if not (isinstance(cls, type) and issubclass(cls, BaseException)):
                raise ProtocolError("a builtin exception class that does not exist")
            return cls
        ref, qualname, module, bases = desc.get("e"), desc.get("q"), desc.get("m"), desc.get("b")
        if (
            type(ref) is not int
            or type(qualname) is not str
            or type(module) is not str
            or type(bases) is not list
        ):
            raise ProtocolError("bad exception class")
        if ref in self.standins:
            return self.standins[ref]
        if len(self.standins) > 1000:
            raise ProtocolError("too many exception classes")
        resolved = [b for b in bases[:8] if isinstance(b, type) and issubclass(b, BaseException)]
        real = _stdlib_exception(module, qualname)
        if real is not None:
            resolved.insert(0, real)
        resolved = [b for b in dict.fromkeys(resolved) if not issubclass(b, _CONTROL)] or [Exception]
        namespace = {
            "__module__": module,
            "__qualname__": qualname,
            "__str__": _standin_str,
            "_sbx_standin": True,
        }
        name = qualname.rsplit(".", 1)[-1] or "Error"
        try:
            cls = type(name, tuple(resolved), namespace)
        except TypeError:  # bases whose layouts conflict (OSError with ValueError): keep the first
            cls = type(name, (resolved[0],), namespace)
        self.standins[ref] = cls
        self.standin_refs[cls] = ref
        return cls

    def make_exception(self, description: Any) -> BaseException:
        if not (type(description) is list and len(description) == 5):
            raise ProtocolError("bad exception")
        cls, text, args, remote_tb, errno = description  # the class was rebuilt by the hook already
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            raise ProtocolError("an exception whose class is not an exception class")
        text = text if type(text) is str else ""
        args = args if type(args) is tuple else (text,)
        exc = None
        if not getattr(cls, "_sbx_standin", False):
            try:
                exc = cls(*args)
            except BaseException:  # noqa: BLE001 - a builtin that wants other arguments
                exc = None
        if exc is None:
            exc = cls.__new__(cls, *args)
            exc.args = args
        exc.__dict__["_sbx_text"] = text
        if type(remote_tb) is str and remote_tb:
            exc.__dict__[outcomes.REMOTE_TRACEBACK] = remote_tb
        if isinstance(exc, OSError) and type(errno) is int and exc.errno is None:
            exc.errno = errno
        return exc

    def raise_error(self, description: Any) -> Any:
        raise self.make_exception(description)

    # -- requests of the contestant (on the tests' objects)

    def serve(self, message: list) -> None:
        kind = message[0]
        try:
            if kind == "call":
                target, args, kwargs = message[1], message[2], message[3]
                if (
                    type(args) is not list
                    or type(kwargs) is not dict
                    or not callable(target)
                    or isinstance(target, Handle)
                ):
                    raise TypeError("not a call")
                try:
                    value = target(*args, **kwargs)
                except (AssertionError, pytest_style.Failed) as exc:
                    self.callback_failures.append(exc)
                    raise
                reply = ["ret", self.encode(value)]
            elif kind == "attr" or kind == "setattr":
                name = message[2]
                if type(name) is not str or name.startswith("_"):
                    raise AttributeError(f"the solution may not use attribute {name!r} of the tests' objects")
                if kind == "attr":
                    reply = ["ret", self.encode(getattr(message[1], name))]
                else:
                    setattr(message[1], name, message[3])
                    reply = ["ret", None]
            elif kind == "op" and message[1] in (
                "len",
                "iter",
                "next",
                "getitem",
                "contains",
                "bool",
                "str",
                "repr",
            ):
                args = message[2]
                if type(args) is not list or not args or isinstance(args[0], Handle):
                    raise TypeError("not an operation on an object of the tests'")
                from sandbox.contestant import OPS

                reply = ["ret", self.encode(OPS[message[1]](*args))]
            else:
                raise ProtocolError(f"the solution sent the request {kind!r}")
        except ProtocolError:
            raise
        except BaseException as exc:  # noqa: BLE001 - goes back to the solution, as its call's exception
            reply = ["err", [{"bx": type(exc).__name__} if getattr(builtins, type(exc).__name__, None) is type(exc)
                             else {"bx": "Exception"}, str(exc)[:500], {"t": [str(exc)[:500]]}, "", None]]  # fmt: skip
        self.channel.send(reply)


def _standin_str(self: BaseException) -> str:
    return self.__dict__.get("_sbx_text", "")


def _stdlib_exception(module: str, qualname: str) -> type | None:
    """The judge's own class for a standard-library exception class the solution raised (already imported here)."""
    if module.split(".", 1)[0] not in sys.stdlib_module_names or module.split(".", 1)[0] in _CONTROL_MODULES:
        return None
    target: Any = sys.modules.get(module)
    for part in qualname.split("."):
        target = getattr(target, part, None) if target is not None else None
    if isinstance(target, type) and issubclass(target, BaseException) and not issubclass(target, _CONTROL):
        return target
    return None


# ----------------------------------------------------------------------------------------------- running


def _count_assert() -> None:
    _REPORT["asserts"] += 1


_REPORT: dict = {}


def _check_callbacks(judge: Judge) -> BaseException | None:
    if judge.callback_failures:
        failure = judge.callback_failures[0]
        judge.callback_failures.clear()
        return failure
    return None


def _run_script(judge: Judge, compiled: tuple, namespace: dict, report: dict) -> None:
    for statement in compiled:
        try:
            exec(statement, namespace)
        except BaseException as exc:  # noqa: BLE001 - a failing test is a result
            report["exception"] = outcomes.describe_exception(_check_callbacks(judge) or exc)
            return
        failure = _check_callbacks(judge)
        if failure is not None:
            report["exception"] = outcomes.describe_exception(failure)
            return
        report["statements"] += 1


def _outcome_recorder(judge: Judge, report: dict) -> Any:
    found: dict[str, dict] = {}
    report["outcomes"] = found

    def record(test_id: str, outcome: str, exc: BaseException | None) -> None:
        failure = _check_callbacks(judge)
        if failure is not None and outcome in ("ok", "skipped"):
            outcome, exc = "failed", failure
        failures = sum(e["outcome"] in ("failed", "error") for e in found.values())
        entry = outcomes.outcome_entry(outcome, exc, failures)
        if test_id not in found or entry["outcome"] in ("failed", "error"):
            found[test_id] = entry

    return record


def judge_job(payload: dict, compiled: bytes, calls_in: int, calls_out: int) -> dict:
    """Run one job's tests against the contestant on the other end of the channel; the report."""
    global _JUDGE
    judge = _JUDGE = Judge(Channel(calls_in, calls_out))
    style, name = payload["style"], payload["module_name"]
    tests_path = payload["tests_path"]
    outcomes.CONTEXT["tests_path"] = tests_path
    source = payload["tests"]
    linecache.cache[tests_path] = (len(source), None, source.splitlines(True), tests_path)
    report = _REPORT
    report.clear()
    report.update(phase="start", statements=0, exception=None, tampering=[], asserts=0)
    try:
        first = judge.channel.receive(judge.hook)
        if first[0] == "load_error" and len(first) == 4:
            report.update(phase=first[1] if first[1] in ("compile", "code") else "code")
            report["exception"] = outcomes.describe_exception(judge.make_exception(first[2]))
            report["covered_lines"] = first[3]
        elif (
            first[0] == "ready"
            and len(first) == 4
            and isinstance(first[1], Handle)
            and type(first[2]) is list
        ):
            report["phase"] = "tests"
            _run_tests(judge, style, name, first[1], [n for n in first[2] if type(n) is str], first[3],
                       compiled, report)  # fmt: skip
            if payload.get("coverage") and not (judge.gone or judge.protocol_error):
                report["covered_lines"] = judge.ask(["coverage"])
        else:
            judge.broken(f"the solution's process began with {first[0]!r}")
    except PeerGone:
        judge.gone = True
    except (ProtocolError, ContestantGone) as exc:
        if not judge.gone:
            judge.broken(str(exc))
    report["contestant_gone"] = judge.gone
    if judge.protocol_error is not None and not judge.gone:
        report["tampering"] = [
            f"the solution's process broke the judge's protocol: {judge.protocol_error}"[:300]
        ]
    report["done"] = True
    _JUDGE = None
    return dict(report)


def _write_report(fd: int, report: dict) -> None:
    data = json.dumps(report, default=str).encode()
    while data:
        data = data[os.write(fd, data) :]


def run(payload: dict, compiled: bytes, calls_in: int, calls_out: int, report_fd: int) -> NoReturn:
    """A judge for one job (the tests could hand the solution code to run here): judge it, report, exit."""
    _write_report(report_fd, judge_job(payload, compiled, calls_in, calls_out))
    os._exit(0)


def serve(sock_fd: int) -> NoReturn:
    """A judge kept for many jobs of one worker: each job's descriptors and payload come on `sock_fd`.

    Between jobs it keeps nothing of the last one that could change the next verdict: the solution's and the
    tests' modules are dropped, the recursion limit and the random generator are reset, and it works in the new
    job's run directory. The server replaces it after a timeout, a crash, or a job it did not finish.
    """
    import gc
    import random
    import socket

    from sandbox.zygote import read_payload

    sock = socket.socket(fileno=sock_fd)
    devnull = os.open(os.devnull, os.O_RDWR)
    recursion_limit = sys.getrecursionlimit()
    jobs = 0
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(sock, 1 << 16, 8)
        except OSError:
            os._exit(0)
        if not data or len(fds) != 6:
            os._exit(0)
        header = json.loads(data)
        calls_in, calls_out, stdout, stderr, report_fd, payload_fd = fds
        os.dup2(stdout, 1)
        os.dup2(stderr, 2)
        os.close(stdout)
        os.close(stderr)
        os.chdir(header["run_dir"])
        sys.setrecursionlimit(recursion_limit)
        random.seed()
        payload, compiled = read_payload(payload_fd)
        for name in (payload["module_name"], "test_" + payload["module_name"]):
            sys.modules.pop(name, None)
        try:
            report = judge_job(payload, compiled, calls_in, calls_out)
        except BaseException as exc:  # noqa: BLE001 - a bug here must not cost the worker; this job errs
            report = {"done": False, "error": f"{type(exc).__name__}: {exc}"}
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:  # noqa: BLE001
                pass
        os.dup2(devnull, 1)  # the job's output pipes must close for the server to see their end
        os.dup2(devnull, 2)
        os.close(calls_in)
        os.close(calls_out)
        linecache.cache.pop(payload["tests_path"], None)
        _write_report(report_fd, report)
        os.close(report_fd)
        jobs += 1
        if jobs % 50 == 0:
            gc.collect()


def _run_tests(judge: Judge, style: str, name: str, module: Handle, public: list[str], values: Any,
               compiled: bytes, report: dict) -> None:  # fmt: skip
    code = marshal.loads(compiled)
    remote = RemoteModule(name, module, public)
    sys.modules[name] = remote
    from sandbox.runner import PYTEST_API

    sys.modules["pytest"] = PYTEST_API
    if style == "script":
        namespace: dict = {"__builtins__": builtins, "__name__": name}
        if type(values) is dict:
            namespace.update({k: v for k, v in values.items() if type(k) is str})
        namespace[COUNT_NAME] = _count_assert
        _run_script(judge, code, namespace, report)
        return
    test_module = types.ModuleType("test_" + name)
    test_module.__file__ = outcomes.CONTEXT["tests_path"]
    sys.modules[test_module.__name__] = test_module
    vars(test_module)[COUNT_NAME] = _count_assert
    try:
        exec(code[0], vars(test_module))
        record = _outcome_recorder(judge, report)
        if style == "unittest":
            suite = unittest.TestLoader().loadTestsFromModule(test_module)
            suite.run(outcomes.Recorder(record, trusted_skips=True))
        else:
            pytest_style.TMP_MODE = 0o1777  # the solution, another uid, uses the directories the tests make
            base = os.path.join(os.getcwd(), ".pytest-tmp")
            os.mkdir(base, 0o1777)
            os.chmod(base, 0o1777)
            pytest_style.run_module(test_module, record, base)
    except BaseException as exc:  # noqa: BLE001 - an error while loading or collecting the tests
        report.pop("outcomes", None)
        report["exception"] = outcomes.describe_exception(exc)
