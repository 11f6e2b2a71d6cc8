"""The contestant: the solution's own process. It loads the code and answers the judge's calls; it never sees a test.

Everything here runs in the same process as untrusted code, so nothing here is trusted: the judge checks every
message it gets (see sandbox/judge.py). This side only has to be right for honest code: plain data goes by value,
anything else by reference, exceptions with their class, and output printed during a call is captured for the
judge when the tests capture output (capsys, a swapped sys.stdout).
"""

from __future__ import annotations

import builtins
import copy
import io
import json
import math
import operator
import os
import sys
import traceback
import types
from typing import Any, NoReturn

from sandbox import channel as wire
from sandbox.channel import Channel, Endpoint, PeerGone, ProtocolError

TRACEBACK_CHARS = 2000
_exit = os._exit


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - the code may have replaced or closed the stream
            pass


def _batch(iterator: Any, size: Any) -> list:
    items = []
    for _ in range(max(1, min(int(size), 4096))):
        try:
            items.append(next(iterator))
        except StopIteration:
            return [items, True]
    return [items, False]


# Operations the judge applies to the contestant's objects (the judge's handles turn dunders into these).
OPS = {
    "len": len, "iter": iter, "bool": bool, "str": str, "repr": repr, "format": format, "hash": hash,
    "getitem": operator.getitem, "setitem": operator.setitem, "delitem": operator.delitem,
    "contains": lambda obj, item: item in obj, "reversed": reversed, "dir": dir,
    "int": int, "float": float, "complex": complex, "index": operator.index, "abs": abs,
    "neg": operator.neg, "pos": operator.pos, "invert": operator.invert, "round": round,
    "trunc": math.trunc, "floor": math.floor, "ceil": math.ceil,
    "isinstance": isinstance, "issubclass": issubclass, "copy": copy.copy, "deepcopy": copy.deepcopy,
    "enter": lambda obj: type(obj).__enter__(obj), "exit": lambda obj, *a: type(obj).__exit__(obj, *a),
    "next": next, "batch": _batch,
}  # fmt: skip
BINARY = {name: getattr(operator, name) for name in (
    "add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "lshift", "rshift", "and_", "or_", "xor", "matmul",
)}  # fmt: skip


class JudgeProxy:
    """An object of the judge's (a callback, an object the tests passed in): every use is a request to the judge."""

    __slots__ = ("_sbx_ref", "_sbx_side")

    def __init__(self, ref: int, side: Contestant) -> None:
        object.__setattr__(self, "_sbx_ref", ref)
        object.__setattr__(self, "_sbx_side", side)

    def _op(self, name: str, *args: Any) -> Any:
        return self._sbx_side.ask(["op", name, [self._sbx_side.encode(a) for a in (self, *args)]])

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        side = self._sbx_side
        return side.ask(["call", {"j": self._sbx_ref}, side.encode(list(args)), side.encode(kwargs)])

    def __getattr__(self, name: str) -> Any:
        return self._sbx_side.ask(["attr", {"j": self._sbx_ref}, name])

    def __setattr__(self, name: str, value: Any) -> None:
        self._sbx_side.ask(["setattr", {"j": self._sbx_ref}, name, self._sbx_side.encode(value)])

    def __eq__(self, other: Any) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    def __len__(self) -> int:
        return self._op("len")

    def __iter__(self) -> Any:
        return self._op("iter")

    def __next__(self) -> Any:
        return self._op("next")

    def __getitem__(self, key: Any) -> Any:
        return self._op("getitem", key)

    def __contains__(self, item: Any) -> bool:
        return self._op("contains", item)

    def __bool__(self) -> bool:
        return self._op("bool")

    def __str__(self) -> str:
        return self._op("str")

    def __repr__(self) -> str:
        return self._op("repr")


class _Capture:
    """sys.stdout/sys.stderr replaced by buffers for one call whose output the tests capture."""

    def __enter__(self) -> _Capture:
        self.saved = (sys.stdout, sys.stderr)
        self.out, self.err = io.StringIO(), io.StringIO()
        sys.stdout, sys.stderr = self.out, self.err
        return self

    def __exit__(self, *exc: Any) -> None:
        sys.stdout, sys.stderr = self.saved


class Contestant(Endpoint):
    def __init__(self, channel: Channel, module: types.ModuleType) -> None:
        super().__init__(channel)
        self.module = module
        self.proxies: dict[int, JudgeProxy] = {}
        self.views: dict[type, type] = {}
        self.covered: set[int] | None = None

    # -- values out

    def encode(self, value: Any) -> Any:
        return wire.encode(value, self._reference)

    def _reference(self, value: Any, depth: int) -> dict:
        if isinstance(value, JudgeProxy):
            return {"j": value._sbx_ref}
        numpy = sys.modules.get("numpy")
        if numpy is not None and isinstance(value, numpy.generic) and not isinstance(value, numpy.void):
            item = value.item()
            if type(item) in (bool, int, float, complex, str, bytes):
                return self.encode(item)
        if isinstance(value, type) and issubclass(value, BaseException):
            return self._exception_class(value)
        if isinstance(value, types.ModuleType):
            top = value.__name__.split(".", 1)[0]
            if top in sys.stdlib_module_names and value is not self.module:
                return {"mod": value.__name__, "h": self.export(value)}
        name = getattr(value, "__name__", None)
        if isinstance(name, str) and getattr(builtins, name, None) is value:
            return {"r": name}
        if depth < wire.MAX_DEPTH:
            contents = wire.view_contents(value)
            if contents is not None:
                base, plain = contents
                return {"v": base, "x": wire.encode(plain, self._reference, depth + 1), "h": self.export(value),
                        "n": type(value).__qualname__}  # fmt: skip
        kind = "c" if isinstance(value, type) else "f" if callable(value) else "o"
        return {"h": self.export(value), "k": kind, "n": type(value).__qualname__}

    def _exception_class(self, cls: type) -> dict:
        if getattr(builtins, cls.__name__, None) is cls:
            return {"bx": cls.__name__}
        bases = [self._exception_class(b) for b in cls.__bases__ if issubclass(b, BaseException)]
        return {"e": self.export(cls), "q": cls.__qualname__, "m": str(cls.__module__), "b": bases}

    def reply_error(self, exc: BaseException) -> list:
        try:
            text = str(exc)
        except BaseException:  # noqa: BLE001 - a hostile __str__
            text = "<exception str() failed>"
        try:
            args = self.encode(tuple(exc.args))
            json.dumps(args)
        except BaseException:  # noqa: BLE001
            args = {"t": [text]}
        errno = exc.errno if isinstance(exc, OSError) and type(exc.errno) is int else None
        return ["err", [self._exception_class(type(exc)), text[:2000], args, _solution_traceback(exc), errno]]

    # -- values in

    def hook(self, obj: dict) -> Any:
        plain = wire.decode_plain(obj)
        if plain is not NotImplemented:
            return plain
        if "h" in obj:
            return self.objects[obj["h"]]
        if "j" in obj:
            ref = obj["j"]
            if "v" in obj:
                base = wire.VIEW_BASES[obj["v"]]
                cls = self.views.get(base) or self.views.setdefault(
                    base, wire.view_class(base, self._judge_attr)
                )
                return wire.make_view(cls, base, obj["x"], ref)
            proxy = self.proxies.get(ref)
            if proxy is None:
                proxy = self.proxies[ref] = JudgeProxy(ref, self)
            return proxy
        if "bx" in obj:
            return getattr(builtins, obj["bx"])
        if "r" in obj:
            return getattr(builtins, obj["r"])
        if "mod" in obj:
            return sys.modules.get(obj["mod"]) or __import__(obj["mod"])
        raise ProtocolError(f"unknown reference {sorted(obj)}")

    def _judge_attr(self, ref: int, name: str) -> Any:
        return self.ask(["attr", {"j": ref}, name])

    def ask(self, message: list) -> Any:
        """A request to the judge (a callback); its value, or its exception raised here."""
        return self.request(message)[1]

    def raise_error(self, description: Any) -> Any:
        cls, text, args = description[0], description[1], description[2]  # the class was rebuilt by the hook
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            cls = Exception
        try:
            exc = cls(*args) if isinstance(args, tuple) else cls(text)
        except BaseException:  # noqa: BLE001
            exc = Exception(text)
        raise exc

    # -- requests of the judge

    def serve(self, message: list) -> None:
        kind = message[0]
        capture = None
        try:
            if kind == "call":
                target, args, kwargs = message[1], message[2], message[3]
                capture = _Capture() if len(message) > 4 and message[4] else None
                reply = self._call(target, args, kwargs, capture)
            elif kind == "attr":
                reply = ["ret", self.encode(getattr(message[1], message[2]))]
            elif kind == "setattr":
                setattr(message[1], message[2], message[3])
                reply = ["ret", None]
            elif kind == "delattr":
                delattr(message[1], message[2])
                reply = ["ret", None]
            elif kind == "op":
                name, args = message[1], message[2]
                capture = _Capture() if len(message) > 3 and message[3] else None
                with capture or _nothing():
                    value = BINARY[name](*args) if name in BINARY else OPS[name](*args)
                reply = ["ret", self.encode(value)]
            elif kind == "coverage":
                reply = ["ret", self.coverage()]
            elif kind == "done":
                _flush()
                _exit(0)
            else:
                raise ProtocolError(f"unknown request {kind!r}")
        except BaseException as exc:  # noqa: BLE001 - everything the code raises goes back to the judge
            if isinstance(exc, MemoryError):
                exc = MemoryError()  # without the frames that hold what filled the memory
            reply = self.reply_error(exc)
        if capture is not None:
            reply.append([capture.out.getvalue(), capture.err.getvalue()])
        _flush()
        try:
            self.channel.send(reply)
        except wire.TooLarge:
            self.channel.send(self.reply_error(OverflowError("the value is too large to send to the tests")))

    def _call(self, target: Any, args: list, kwargs: dict, capture: _Capture | None) -> list:
        # Plain mutable arguments are copies here: their new contents go back so that a solution that sorts a
        # list in place is seen doing so by the tests.
        watched = [
            (i, a, json.dumps(self.encode(a)))
            for i, a in enumerate(args)
            if type(a) in (list, dict, set, bytearray)
        ]
        watched += [
            (k, a, json.dumps(self.encode(a)))
            for k, a in kwargs.items()
            if type(a) in (list, dict, set, bytearray)
        ]
        with capture or _nothing():
            value = target(*args, **kwargs)
        changed = []
        for where, arg, before in watched:
            after = self.encode(arg)
            if json.dumps(after) != before:
                changed.append([where, after])
        return ["ret", self.encode(value), changed]

    def coverage(self) -> list[int] | None:
        if self.covered is None:
            return None
        from sandbox.coverage import stop_coverage

        return stop_coverage(self.covered)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


def _solution_traceback(exc: BaseException) -> str:
    """The frames of the solution's own files, formatted (the contestant's protocol frames left out)."""
    try:
        here = os.path.dirname(os.path.abspath(__file__)) + os.sep
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(here)]
        text = "".join(traceback.format_list(frames)).replace(os.getcwd() + os.sep, "")
    except BaseException:  # noqa: BLE001
        return ""
    if len(text) > TRACEBACK_CHARS:
        text = text[: TRACEBACK_CHARS // 4] + "  ...\n" + text[-(TRACEBACK_CHARS * 3 // 4) :]
    return text


def _load(module: types.ModuleType, code: str, path: str) -> tuple[str, BaseException] | None:
    """Run the solution as `module`; (phase, exception) if it does not compile or raises."""
    try:
        compiled = compile(code, path, "exec")
    except (SyntaxError, ValueError) as exc:
        return "compile", exc
    try:
        exec(compiled, vars(module))
    except BaseException as exc:  # noqa: BLE001 - everything the code raises is a result
        if isinstance(exc, MemoryError):
            vars(module).clear()  # free what the code holds, so the error can still be sent
        return "code", exc
    return None


def main(payload: dict, calls_in: int, calls_out: int) -> NoReturn:
    """Load the solution, tell the judge what it defines, then answer the judge's requests until it is done."""
    name, path = payload["module_name"], payload["code_path"]
    module = types.ModuleType(name)
    module.__file__ = path
    sys.modules[name] = module
    side = Contestant(Channel(calls_in, calls_out), module)
    if payload.get("coverage"):
        from sandbox.coverage import start_coverage

        _, side.covered = start_coverage(path)
    failure = _load(module, payload["code"], path)
    _flush()
    try:
        if failure is not None:
            phase, exc = failure
            side.channel.send(["load_error", phase, side.reply_error(exc)[1], side.coverage()])
            _flush()
            _exit(0)
        namespace = vars(module)
        public = namespace.get("__all__")
        if not (isinstance(public, list | tuple) and all(type(n) is str for n in public)):
            public = [n for n in namespace if not n.startswith("_")]
        values = None
        if payload["style"] == "script":  # the tests run with the solution's names in their namespace
            values = {n: v for n, v in namespace.items() if not (n.startswith("__") and n.endswith("__"))}
        module_ref = {
            "h": side.export(module),
            "k": "o",
            "n": "module",
        }  # never by name, whatever it is called
        side.channel.send(["ready", module_ref, list(public), side.encode(values)])
        while True:
            side.serve(side.channel.receive(side.hook))
    except (PeerGone, ProtocolError, OSError):
        pass
    _flush()
    _exit(0)


def run_program(payload: dict, report_fd: int) -> NoReturn:
    """stdio style: run the program as __main__; its exit status and output are what the host judges.

    What goes to `report_fd` (the exception, the covered lines) only explains a failure; it can never make a run
    pass, since a pass needs a normal exit and the expected output, which the host alone holds.
    """
    path = payload["code_path"]
    namespace = {"__name__": "__main__", "__builtins__": builtins, "__file__": path}
    covered = None
    if payload.get("coverage"):
        from sandbox.coverage import start_coverage

        _, covered = start_coverage(path)
    report: dict = {}
    status = 0
    try:
        exec(compile(payload["code"], path, "exec"), namespace)
    except SystemExit as exc:
        if exc.code not in (0, None):
            report["exception"] = _describe(exc, "code")
            status = 1
    except BaseException as exc:  # noqa: BLE001 - the program's failure is its result
        if isinstance(exc, MemoryError):
            namespace.clear()
        report["exception"] = _describe(exc, "compile" if isinstance(exc, SyntaxError) else "code")
        status = 1
    _flush()
    if covered is not None:
        from sandbox.coverage import stop_coverage

        report["covered_lines"] = stop_coverage(covered)
    try:
        data = json.dumps(report, default=str).encode()[: 1 << 20]
        while data:
            data = data[os.write(report_fd, data) :]
    except BaseException:  # noqa: BLE001
        pass
    _exit(status)


def _describe(exc: BaseException, phase: str) -> dict:
    from sandbox.outcomes import describe_exception

    return dict(describe_exception(exc), phase=phase)
