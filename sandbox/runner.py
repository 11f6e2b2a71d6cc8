"""The in-process runner: the solution and its tests in one process, for tests that need that (mock.patch of the
solution's module, reading its source, objects the judge's protocol cannot carry). Hardened, never trusted.

The code shares this process, so a determined program can always forge what it reports (`Result.isolation` is
"in_process" for these verdicts); the runner closes the generic ways:
- each test's outcome is written to the result channel the moment the test ends, by a writer bound before any
  code ran; the server takes the first outcome of each test, so nothing later (a `__del__`, a thread, a signal
  handler, a gc callback, a patched JSON encoder or stream) can change it, and a second, different outcome for a
  test is `tampering`;
- the record that ends the report carries a nonce copied pipe-to-pipe by the kernel (`os.splice`): it is never in
  this process's memory, and a process that ends without that record never passes;
- the tests run in a namespace of their own, with a copy of the real builtins taken before any code existed;
- every comparison in the tests (single or chained) and unittest's comparing asserts first check their operands:
  an object whose comparison methods the code wrote, compared with plain data, is `tampering`;
- the namespaces the verdict depends on (the builtins copy, the runner, unittest's machinery, pytest's) must not be
  written at all; every other preloaded module and class, sys.modules, sys.meta_path and sys.path_hooks are compared
  by content with a snapshot taken in the zygote, after every test for the modules the tests import and at the end
  for all of them;
- an audit hook (it cannot be removed) refuses trace and profile hooks, the gc's object walks, swapping a
  function's code or defaults, and ctypes' raw memory access.
"""

from __future__ import annotations

import builtins
import ctypes
import functools
import gc
import json
import marshal
import operator
import os
import struct
import sys
import types
import unittest
from typing import Any, NoReturn

from sandbox import outcomes, pytest_style, testcode

_write = os.write
_splice = os.splice
_exit = os._exit
_getpid = os.getpid
_type = type
_isinstance = isinstance
_id = id
_len = len
_getframe = sys._getframe
_addaudithook = sys.addaudithook
_escape = json.encoder.encode_basestring_ascii
_THIS_MODULE = sys.modules[__name__]  # jobs remove it from sys.modules; the watch list keeps it

_OP_FUNCS = (
    operator.eq,
    operator.ne,
    operator.lt,
    operator.le,
    operator.gt,
    operator.ge,
    lambda a, b: a in b,
    lambda a, b: a not in b,
)  # fmt: skip  (in testcode.COMPARE_OPS order)
_PLAIN_SCALARS = (type(None), bool, int, float, complex, str, bytes)
_CONTAINERS = (list, tuple, set, frozenset, dict)
_APPROX_TYPES = pytest_style.APPROX_TYPES
_COMPARISONS = ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__contains__")
_C_METHODS = (types.WrapperDescriptorType, types.MethodDescriptorType)
_type_dict = type.__dict__["__dict__"].__get__  # a class's own namespace, whatever its metaclass claims
# What `import pytest` gives the tests and the code inside the sandbox (made once, in the zygote).
PYTEST_API = pytest_style.api()
# The builtins as they were before any code existed: the tests' namespace gets this copy, never the live module.
PRISTINE_BUILTINS = dict(vars(builtins))


class TamperingDetected(BaseException):
    """Raised by the guards; a BaseException so that `except Exception` in the tests cannot swallow it."""


# Per-run facts the guards need, reset in each job. A dict whose *contents* change, so that the watched
# namespaces themselves never change during an honest run.
_RUN: dict[str, Any] = {"tampering": [], "asserts": 0, "guard": False, "emit": None, "compiled_by_code": set(),
                        "own_modules": set()}  # fmt: skip
_SAFE: dict[type, bool] = {}  # per job: type -> its comparisons may be trusted (filled as types are met)
_KNOWN: set[int] = set()  # ids of the types that existed in the zygote (kept alive in _KNOWN_TYPES)
_KNOWN_TYPES: list[type] = []
_KNOWN_FUNCTIONS: set[int] = set()  # ids of the functions that existed in the zygote (kept alive below)
_KEPT_FUNCTIONS: list[Any] = []
_SANDBOX_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_INSTALL_DIRS: tuple[str, ...] = ()  # where the interpreter's own modules live (set in the zygote)


# ------------------------------------------------------------------------------------------ the guard


def _trusted(t: type) -> bool:
    """Can the comparisons of type `t` be trusted? Types of the zygote, and classes whose comparison methods are
    C methods of a base they inherit or Python functions from a real file of the Python installation (not
    unittest.mock, whose ANY equals everything, and not compiled by the code)."""
    verdict = _SAFE.get(t)
    if verdict is not None:
        return verdict
    verdict = True
    for klass in t.__mro__:
        if _id(klass) in _KNOWN:
            continue
        own = _type_dict(klass)
        for name in _COMPARISONS:
            method = own.get(name)
            if method is None:
                continue
            if _isinstance(method, _C_METHODS) and method.__objclass__ in t.__mro__:
                continue
            code = getattr(method, "__code__", None) if _type(method) is types.FunctionType else None
            filename = code.co_filename if code is not None else ""
            if not (
                filename.startswith(_INSTALL_DIRS)
                and not filename.endswith(os.sep + "mock.py")
                and filename not in _RUN["compiled_by_code"]
            ):
                verdict = False
                break
        if not verdict:
            break
    _SAFE[t] = verdict
    return verdict


def _walk(x: Any, budget: list[int]) -> Any:
    """Yield x and what it holds: items of builtin containers, the expected value of pytest.approx, the instance
    attributes of trusted objects (a UserString holding a lying str), up to a node budget."""
    stack = [x]
    while stack and budget[0] > 0:
        budget[0] -= 1
        v = stack.pop()
        yield v
        t = _type(v)
        if t is dict:
            stack.extend(v.keys())
            stack.extend(v.values())
        elif t in _CONTAINERS:
            stack.extend(v)
        elif t in _APPROX_TYPES:
            stack.append(v.expected)
        elif t not in _PLAIN_SCALARS and _trusted(t):
            attrs = (
                getattr(v, "__dict__", None)
                if _id(t) not in _KNOWN or t.__module__ == "collections"
                else None
            )
            if _type(attrs) is dict:
                stack.extend(attrs.values())


def _is_plain(x: Any) -> bool:
    return all(
        _type(v) in _PLAIN_SCALARS or _type(v) in _CONTAINERS or _type(v) in _APPROX_TYPES
        for v in _walk(x, [10000])
    )


def _untrusted_in(x: Any) -> str | None:
    for v in _walk(x, [10000]):
        t = _type(v)
        if t not in _PLAIN_SCALARS and t not in _CONTAINERS and not _trusted(t):
            return t.__name__
    return None


def check_operands(a: Any, b: Any) -> None:
    """Reject comparing a value built by the tests (plain data) with an object whose comparisons the code wrote."""
    if not _RUN["guard"]:
        return
    for suspect, other in ((a, b), (b, a)):
        name = _untrusted_in(suspect)
        if name is not None and _is_plain(other):
            reason = (
                f"an object of class {name}, whose comparisons the code defined, was compared with plain data"
            )
            _tampering(reason)
            raise TamperingDetected(reason)


def guarded_compare(op_index: int, a: Any, b: Any) -> Any:
    check_operands(a, b)
    return _OP_FUNCS[op_index](a, b)


def count_assert() -> None:
    _RUN["asserts"] += 1


# The instrumented tests find the guard and the counter in their builtins, not in a namespace the tests write.
PRISTINE_BUILTINS[testcode.COMPARE_NAME] = guarded_compare
PRISTINE_BUILTINS[testcode.COUNT_NAME] = count_assert


_GUARDED_ASSERTS = ("assertEqual", "assertNotEqual", "assertAlmostEqual", "assertNotAlmostEqual", "assertIn",
                    "assertNotIn", "assertCountEqual", "assertSequenceEqual", "assertListEqual", "assertTupleEqual",
                    "assertSetEqual", "assertDictEqual", "assertMultiLineEqual", "assertGreater",
                    "assertGreaterEqual", "assertLess", "assertLessEqual")  # fmt: skip


def _guarded_assert(original: Any) -> Any:
    def method(self: Any, first: Any, second: Any, *args: Any, **kwargs: Any) -> Any:
        check_operands(first, second)
        return original(self, first, second, *args, **kwargs)

    method.__name__ = original.__name__
    method.__sandbox_guard__ = True
    return method


def install_unittest_guards() -> None:
    """Wrap TestCase's comparing asserts once, in the zygote, before any untrusted code exists (they check only
    in in-process jobs)."""
    for name in _GUARDED_ASSERTS:
        original = getattr(unittest.TestCase, name)
        if not getattr(original, "__sandbox_guard__", False):
            setattr(unittest.TestCase, name, _guarded_assert(original))


# ---------------------------------------------------------------------------------- the tamper checks


class _IOVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


_VERSION_OFFSET = 3 * ctypes.sizeof(ctypes.c_ssize_t)  # a dict's ma_version_tag: after refcnt, type, ma_used
_libc = ctypes.CDLL(None, use_errno=True)
_readv = _libc.process_vm_readv
_readv.restype = ctypes.c_ssize_t
_readv.argtypes = [
    ctypes.c_int,
    ctypes.c_void_p,
    ctypes.c_ulong,
    ctypes.c_void_p,
    ctypes.c_ulong,
    ctypes.c_ulong,
]


class VersionTable:
    """The version tags of many dicts, read without touching the dicts.

    CPython 3.11 keeps a version tag in every dict (PEP 509) that changes on every modification; the tag is read
    through a ctypes view made in the zygote, so the forked job copies none of the dicts' pages, and only a dict
    whose tag moved is compared by content. `usable` is False where this interpreter does not behave so, and then
    every dict is compared by content.
    """

    def __init__(self, dicts: list[dict], probe: bool = True) -> None:
        self.count = len(dicts)
        self.views = [ctypes.c_uint64.from_address(_id(d) + _VERSION_OFFSET) for d in dicts]
        self.usable = not probe or (sys.implementation.name == "cpython" and sys.version_info[:2] == (3, 11)
                                    and _tags_move())  # fmt: skip
        self.baseline = [v.value for v in self.views] if self.usable else []

    def changed(self, indices: Any = None) -> list[int]:
        """Those of `indices` (default: all) whose tag differs from the baseline (all of them, if unusable)."""
        indices = range(self.count) if indices is None else indices
        if not self.usable:
            return list(indices)
        views, baseline = self.views, self.baseline
        return [i for i in indices if views[i].value != baseline[i]]

    def accept(self, index: int) -> None:
        """The dict at `index` changed but was found unchanged by content: take its new tag as the baseline."""
        if self.usable:
            self.baseline[index] = self.views[index].value


class DictEntries:
    """The (key, value) pointer pairs of one dict, read from this process's memory without touching the objects.

    Walking sys.modules from Python would write the reference count of every module (and of its name) and so copy
    about 300 pages of the zygote per job; reading the dict's entry table raw touches none. Layout of CPython 3.11,
    checked against the real dict in the zygote (`usable`).
    """

    _HEADER = 48  # PyDictObject: refcnt, type, ma_used, ma_version_tag, ma_keys, ma_values
    _KEYS_HEADER = (
        32  # PyDictKeysObject: refcnt, log2_size, log2_index_bytes, kind, version, usable, nentries
    )

    def __init__(self, d: dict, table: VersionTable) -> None:
        self.d, self.readv = d, _readv
        try:
            self.usable = self.pairs() == {(_id(k), _id(v)) for k, v in d.items()}
        except (OSError, ValueError, struct.error):
            self.usable = False

    def _read(self, address: int, size: int) -> bytes:
        buffer = ctypes.create_string_buffer(size)
        local, remote = _IOVec(ctypes.addressof(buffer), size), _IOVec(address, size)
        if self.readv(_getpid(), ctypes.byref(local), 1, ctypes.byref(remote), 1, 0) != size:
            raise OSError(ctypes.get_errno(), "process_vm_readv")
        return buffer.raw

    def pairs(self) -> set[tuple[int, int]]:
        _, _, _, _, keys, values = struct.unpack("6Q", self._read(_id(self.d), self._HEADER))
        if values:
            raise ValueError("a split dict")
        header = self._read(keys, self._KEYS_HEADER)
        log2_index_bytes, kind = header[9], header[10]
        (nentries,) = struct.unpack_from("q", header, 24)
        width = 24 if kind == 0 else 16  # DICT_KEYS_GENERAL entries carry the hash too
        raw = self._read(keys + self._KEYS_HEADER + (1 << log2_index_bytes), width * nentries)
        words = memoryview(raw).cast("Q")
        step, first = width // 8, width // 8 - 2
        return {
            (words[i + first], words[i + first + 1]) for i in range(0, len(words), step) if words[i + first]
        }


def _tags_move() -> bool:
    """Does a dict's version tag, read as VersionTable reads it, change when the dict does (and only then)?"""
    try:
        probe = {"a": 1}
        table = VersionTable([probe], probe=False)
        before = table.views[0].value
        probe["a"] = 2
        after = table.views[0].value
        return before != after and table.views[0].value == after
    except (OSError, AttributeError, ValueError):
        return False


# Keys that appear in module and class namespaces without anyone patching anything.
_BENIGN_NEW_KEYS = frozenset({"__warningregistry__", "__annotations__", "_abc_impl"})
# Modules whose namespace changes in every honest run (the job's own sys.stdin and sys.argv) or holds the
# sandbox's own per-job state; sys.modules, sys.meta_path and sys.path_hooks are checked on their own.
_UNWATCHED_MODULES = frozenset({"sys", "__main__"})
# Public module globals that the standard library itself assigns at run time (caches).
_MUTABLE_GLOBALS = frozenset({"tempdir"})


def _watched_name(key: str) -> bool:
    """Names whose change could change what the tests see: public names and dunders (__eq__, __exit__). Other
    underscore names are caches and flags the standard library itself reassigns (warnings._filters_version,
    weakref.finalize._dirty)."""
    return (
        not key.startswith("_") or (key.startswith("__") and key.endswith("__"))
    ) and key not in _MUTABLE_GLOBALS


def _public(namespace: dict) -> dict:
    return {k: v for k, v in namespace.items() if _watched_name(k)}


class Watched:
    """One namespace as it was in the zygote: its dict and the identity of each value."""

    __slots__ = ("name", "namespace", "ids", "strict", "public_only")

    def __init__(self, name: str, keys: dict, strict: bool, namespace: dict | None = None) -> None:
        self.namespace = keys if namespace is None else namespace
        self.name, self.strict, self.public_only = name, strict, namespace is not None
        self.ids = {k: _id(v) for k, v in keys.items()}

    def change(self, version_moved: bool = True) -> str | None:
        """Why the namespace differs from the snapshot, or None. `version_moved`: its version tag changed (a
        strict namespace may never be written; the others are compared by content)."""
        d = self.namespace
        if self.strict and version_moved and TABLE_USABLE[0]:
            return f"{self.name} was written to"
        for key, ident in self.ids.items():
            if key not in d:
                return f"{self.name}.{key} was removed"
            if _id(d[key]) != ident:
                return f"{self.name}.{key} was replaced"
        if _len(d) != _len(self.ids) or self.public_only:
            for key in d:
                if key in self.ids or key in _BENIGN_NEW_KEYS:
                    continue
                if self.public_only and not _watched_name(key):
                    continue
                if not _is_submodule(self.name, key, d[key]):
                    return f"{self.name}.{key} was added"
        return None


def _is_submodule(parent: str, key: str, value: Any) -> bool:
    return _isinstance(value, types.ModuleType) and sys.modules.get(f"{parent}.{key}") is value


class Snapshot:
    """Everything the tamper checks compare against, taken in the zygote before any code existed."""

    def __init__(self) -> None:
        strict_modules = [_THIS_MODULE, outcomes, pytest_style, testcode, unittest.case, unittest.result,
                          unittest.suite, unittest.loader]  # fmt: skip
        strict_classes = [unittest.TestCase, unittest.TestResult, unittest.TestSuite, unittest.TestLoader,
                          outcomes.Recorder, *(v for v in vars(pytest_style).values()
                                               if _isinstance(v, type) and v.__module__ == pytest_style.__name__)]  # fmt: skip
        self.strict = [Watched(m.__name__, vars(m), True) for m in strict_modules]
        self.strict.append(Watched("the tests' builtins", PRISTINE_BUILTINS, True))
        self.strict.append(Watched("pytest", vars(PYTEST_API), True))
        self.strict += [
            Watched(c.__qualname__, gc.get_referents(c.__dict__)[0], True) for c in strict_classes
        ]
        strict_ids = {_id(w.namespace) for w in self.strict}
        self.modules: dict[
            str, list[Watched]
        ] = {}  # top-level module name -> its modules' and classes' watches
        for name, module in list(sys.modules.items()):
            if not _isinstance(module, types.ModuleType) or _id(vars(module)) in strict_ids:
                continue
            if name in _UNWATCHED_MODULES:
                continue
            watches = [Watched(name, _public(vars(module)), False, vars(module))]
            for value in list(vars(module).values()):
                if _isinstance(value, type) and value.__module__ == name:
                    inner = gc.get_referents(value.__dict__)[0]
                    if _type(inner) is dict and _id(inner) not in strict_ids:
                        watches.append(Watched(f"{name}.{value.__qualname__}", _public(inner), False, inner))
            self.modules.setdefault(name.split(".", 1)[0], []).extend(watches)
        self.sys_modules = dict(sys.modules)
        self.hooks = (list(sys.meta_path), list(sys.path_hooks))
        self.watches = self.strict + [w for group in self.modules.values() for w in group]
        self.table = VersionTable([w.namespace for w in self.watches] + [sys.modules])
        TABLE_USABLE[0] = self.table.usable
        self.modules_raw = DictEntries(sys.modules, self.table)
        self.module_pairs = {(_id(k), _id(v)) for k, v in sys.modules.items()}

    def _import_system(self) -> str | None:
        for hooks, now, name in zip(
            self.hooks, (sys.meta_path, sys.path_hooks), ("meta_path", "path_hooks"), strict=True
        ):
            if _len(hooks) != _len(now) or any(a is not b for a, b in zip(hooks, now, strict=True)):
                return f"sys.{name} was changed"
        if self.modules_raw.usable:
            try:
                now = self.modules_raw.pairs()
            except (OSError, ValueError, struct.error):
                now = None
            if now is not None:
                if not self.module_pairs <= now:
                    return "sys.modules: a module of the zygote's was replaced or removed"
                for key_address, module_address in now - self.module_pairs:
                    # Only the new entries are looked at as objects (the dict holds them: the addresses are live).
                    name = ctypes.cast(key_address, ctypes.py_object).value
                    module = ctypes.cast(module_address, ctypes.py_object).value
                    if name not in _RUN["own_modules"] and not _genuine(name, module):
                        return f"sys.modules[{name!r}] holds a module that was not imported"
                return None
        for name, module in self.sys_modules.items():
            if sys.modules.get(name) is not module:
                return f"sys.modules[{name!r}] was replaced or removed"
        for name, module in list(sys.modules.items()):
            if (
                name not in self.sys_modules
                and name not in _RUN["own_modules"]
                and not _genuine(name, module)
            ):
                return f"sys.modules[{name!r}] holds a module that was not imported"
        return None

    def check(self) -> str | None:
        """The first change found in any watched namespace or in the import system, or None."""
        reason = None
        sys_modules_index = len(self.watches)
        changed = self.table.changed()
        for index in changed:
            if index == sys_modules_index:
                reason = self._import_system()
            else:
                reason = self.watches[index].change()
            if reason is not None:
                return reason
            self.table.accept(index)
        if not changed or sys_modules_index not in changed:
            # sys.meta_path and sys.path_hooks are lists: their changes move no dict's version tag.
            reason = self._import_system() if self.hooks_changed() else None
        return reason

    def hooks_changed(self) -> bool:
        return any(_len(h) != _len(n) or any(a is not b for a, b in zip(h, n, strict=True))
                   for h, n in zip(self.hooks, (sys.meta_path, sys.path_hooks), strict=True))  # fmt: skip


TABLE_USABLE = [False]


def _genuine(name: str, module: Any) -> bool:
    """A module imported the normal way: a module object whose spec names it and points to a real source."""
    spec = getattr(module, "__spec__", None)
    if not _isinstance(module, types.ModuleType) or spec is None or getattr(spec, "name", None) != name:
        return False
    origin = getattr(spec, "origin", None)
    return origin in (None, "built-in", "frozen") or (_isinstance(origin, str) and os.path.exists(origin))


SNAPSHOT: list[Snapshot] = []  # set by prepare_zygote()


def prepare_zygote(install_dirs: list[str]) -> None:
    """Once, in the zygote, after every preloaded import: the known types and the snapshot."""
    global _INSTALL_DIRS
    install_unittest_guards()
    _INSTALL_DIRS = tuple(d.rstrip(os.sep) + os.sep for d in install_dirs)
    _KNOWN_TYPES[:] = [o for o in gc.get_objects() if _isinstance(o, type)] + [
        t
        for t in (
            type(None),
            bool,
            int,
            float,
            complex,
            str,
            bytes,
            list,
            tuple,
            dict,
            set,
            frozenset,
            object,
            type,
        )
    ]
    _KNOWN.update(_id(t) for t in _KNOWN_TYPES)
    _KEPT_FUNCTIONS[:] = [o for o in gc.get_objects() if _type(o) is types.FunctionType]
    _KNOWN_FUNCTIONS.update(_id(f) for f in _KEPT_FUNCTIONS)
    SNAPSHOT[:] = [Snapshot()]


# -------------------------------------------------------------------------------------- the report


def _record_text(
    obj: Any, _escape: Any = _escape, _type: Any = _type, _repr: Any = repr, _str: Any = str
) -> str:
    """A JSON text of a record (str, int, bool, None, lists and str-keyed dicts), without the json module, which the
    code could patch."""
    t = _type(obj)
    if t is str:
        return _escape(obj)
    if obj is None:
        return "null"
    if t is bool:
        return "true" if obj else "false"
    if t is int:
        return _str(obj)
    if t is list or t is tuple:
        return "[" + ",".join([_record_text(v) for v in obj]) + "]"
    if t is dict:
        return "{" + ",".join([_escape(_str(k)) + ":" + _record_text(v) for k, v in obj.items()]) + "}"
    return _escape(_repr(obj)[:300])


def _emit(fd: int, owner: int, record: list, _write: Any = _write, _text: Any = _record_text) -> None:
    if _getpid() != owner:
        return  # a process the code forked: only the job itself reports
    body = _text(record).encode("utf-8", "replace")
    data = b"R%08d" % _len(body) + body
    while data:
        data = data[_write(fd, data) :]


def _end(fd: int, nonce_fd: int, _write: Any = _write, _splice: Any = _splice) -> None:
    """The last record: a marker, then the nonce moved from its pipe to the result pipe by the kernel."""
    _write(fd, b"E")
    _splice(nonce_fd, fd, 64)


def _tampering(reason: str) -> None:
    if reason not in _RUN["tampering"]:
        _RUN["tampering"].append(reason)
        emit = _RUN["emit"]
        if emit is not None:
            emit(["t", reason])


_REFUSED_EVENTS = frozenset({"gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys._current_frames",
                             "ctypes.cdata", "ctypes.cdata/buffer", "ctypes.string_at",
                             "ctypes.wstring_at", "sys.settrace", "sys.setprofile"})  # fmt: skip
_FUNCTION_INTERNALS = frozenset({"__code__", "__defaults__", "__kwdefaults__", "__closure__", "__globals__"})


def forbid_introspection(own_tracer: Any, tests_file: str) -> None:
    """From now until the job exits, refuse (and report as tampering) what only verdict forgery needs.

    An audit hook cannot be removed. Allowed: the runner's own coverage tracer (new threads install it, and
    stop_coverage removes it), and code swaps in functions made during the job outside the tests.
    """
    from sandbox.coverage import stop_coverage

    allowed_callers = {stop_coverage.__code__}
    busy = [False]

    def audit(event: str, args: tuple) -> None:
        if busy[0]:
            return
        if event == "compile":
            if _len(args) > 1 and _type(args[1]) is str:
                _RUN["compiled_by_code"].add(args[1])
            return
        if event == "object.__setattr__":
            if not (
                _len(args) > 1 and args[1] in _FUNCTION_INTERNALS and _type(args[0]) is types.FunctionType
            ):
                return
            busy[0] = True
            try:
                # Code swaps by modules imported during the job (types.coroutine does one) are theirs; a swap in a
                # function that existed before the code ran, or in a test, is an attack on the verdict.
                filename = args[0].__code__.co_filename
                if (
                    _id(args[0]) not in _KNOWN_FUNCTIONS
                    and filename != tests_file
                    and not filename.startswith(_SANDBOX_DIR)
                ):
                    return
            finally:
                busy[0] = False
            reason = f"a function's {args[1]} was replaced (the code set it on {getattr(args[0], '__name__', '?')})"
        elif event in _REFUSED_EVENTS:
            if event in ("sys.settrace", "sys.setprofile"):
                caller = _getframe(1).f_code
                if caller in allowed_callers:
                    return
                if (
                    own_tracer is not None
                    and event == "sys.settrace"
                    and caller.co_name == "_bootstrap_inner"
                ):
                    threading = sys.modules.get("threading")
                    if threading is not None and threading._trace_hook is own_tracer:
                        return
                reason = f"a trace or profile hook was installed (the code called {event})"
            else:
                reason = f"the code called {event}, which the sandbox does not allow in-process"
        else:
            return
        _tampering(reason)
        raise RuntimeError(f"the sandbox does not allow this in-process ({event})")

    _addaudithook(audit)


# ------------------------------------------------------------------------------------------ running


def _hooks_left(own_tracer: Any) -> str | None:
    """A trace or profile hook other than the runner's own (threading's are set without an auditing event)."""
    threading = sys.modules.get("threading")
    hooks = [sys.gettrace(), sys.getprofile()]
    if threading is not None:
        hooks += [threading._trace_hook, threading._profile_hook]
    if any(h is not None and h is not own_tracer for h in hooks) or (own_tracer is None and any(hooks)):
        return "a trace or profile hook was installed"
    return None


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - the code may have replaced or closed the stream
            pass


def _exec_code(code: str, path: str, namespace: dict, emit: Any) -> bool:
    """Compile and run the solution; False (with the failure emitted) when it fails."""
    try:
        compiled = compile(code, path, "exec")
    except (SyntaxError, ValueError) as exc:
        emit(["x", "compile", outcomes.describe_exception(exc)])
        return False
    try:
        exec(compiled, namespace)
    except BaseException as exc:  # noqa: BLE001 - everything the code raises is a result
        if _isinstance(exc, MemoryError):
            namespace.clear()  # free what the code holds, so the report can still be written
        emit(["x", "code", outcomes.describe_exception(exc)])
        return False
    return True


def _load_module(name: str, path: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__file__ = path
    sys.modules[name] = module
    return module


class _Tests:
    """One in-process run: emits each test's outcome as it ends, and checks for tampering after each test."""

    def __init__(self, emit: Any) -> None:
        self.emit, self.failures = emit, 0
        self.test_callables: dict[tuple[int, str], int] = {}  # (namespace, name) -> id, once the tests loaded
        self.namespaces: dict[int, dict] = {}

    def watch_tests(self, module: types.ModuleType) -> None:
        """The test file's functions and its classes' methods, as loaded: code that swaps one (say, the next test
        method) for one that passes is tampering."""
        spaces = [vars(module)] + [_type_dict(v) for v in vars(module).values() if _isinstance(v, type)
                                   and v.__module__ == module.__name__]  # fmt: skip
        for space in spaces:
            self.namespaces[_id(space)] = space
            for key, value in space.items():
                if _isinstance(value, types.FunctionType | staticmethod | classmethod):
                    self.test_callables[(_id(space), key)] = _id(value)

    def after_test(self) -> None:
        reason = SNAPSHOT[0].check()
        if reason is None:
            for (space, key), ident in self.test_callables.items():
                value = self.namespaces[space].get(key)
                if _id(value) != ident:
                    reason = f"the test file's {key} was replaced or removed"
                    break
        if reason is not None:
            _tampering(reason)

    def outcome(self, test_id: str, outcome: str, exc: BaseException | None) -> None:
        # The outcome goes out first, before anything (describing the exception) can run the code's methods.
        self.emit(["o", test_id, outcome])
        if outcome in ("failed", "error"):
            self.emit(["d", test_id, outcomes.outcome_entry(outcome, exc, self.failures)])
            self.failures += 1
        self.after_test()


def _test_namespace(solution: dict, name: str) -> dict:
    namespace = {k: v for k, v in solution.items() if not (k.startswith("__") and k.endswith("__"))}
    namespace.update(__builtins__=PRISTINE_BUILTINS, __name__=name)
    return namespace


def _run_script(payload: dict, tests: _Tests, code: tuple) -> None:
    solution = _load_module(payload["module_name"], payload["code_path"])
    if not _exec_code(payload["code"], payload["code_path"], vars(solution), tests.emit):
        return
    namespace = _test_namespace(vars(solution), payload["module_name"])
    for index, statement in enumerate(code):
        try:
            exec(statement, namespace)
        except BaseException as exc:  # noqa: BLE001 - a failing or hostile test is a result
            tests.outcome(str(index), "failed" if _isinstance(exc, AssertionError) else "error", exc)
            return
        tests.outcome(str(index), "ok", None)


def _run_module_tests(payload: dict, tests: _Tests, code: tuple) -> None:
    solution = _load_module(payload["module_name"], payload["code_path"])
    if not _exec_code(payload["code"], payload["code_path"], vars(solution), tests.emit):
        return
    try:
        module = _load_module(
            "test_" + payload["module_name"], os.path.join(os.getcwd(), payload["tests_path"])
        )
        vars(module)["__builtins__"] = PRISTINE_BUILTINS
        exec(code[0], vars(module))
        tests.watch_tests(module)
        if payload["style"] == "unittest":
            suite = unittest.TestLoader().loadTestsFromModule(module)
            suite.run(outcomes.Recorder(tests.outcome, trusted_skips=False))
        else:
            pytest_style.run_module(module, tests.outcome, untrusted_file=payload["code_path"])
    except BaseException as exc:  # noqa: BLE001 - an error while loading or collecting the tests
        tests.emit(["x", "tests", outcomes.describe_exception(exc)])


def execute(payload: dict, compiled: bytes, result_fd: int, nonce_fd: int) -> NoReturn:
    """Run one in-process job in this (already isolated) process and stream its report to `result_fd`."""
    owner = _getpid()
    emit = functools.partial(_emit, result_fd, owner)
    name = payload["module_name"]
    _RUN.update(tampering=[], asserts=0, guard=True, emit=emit, own_modules={name, "test_" + name, "pytest"})
    _SAFE.clear()
    outcomes.CONTEXT["tests_path"] = payload["tests_path"]
    sys.modules["pytest"] = PYTEST_API  # the sandbox's pytest subset, never a plugin host
    code = marshal.loads(compiled)
    tracer, covered = None, None
    if payload.get("coverage"):
        from sandbox.coverage import start_coverage

        tracer, covered = start_coverage(payload["code_path"])
    forbid_introspection(tracer, payload["tests_path"])
    tests = _Tests(emit)
    try:
        if payload["style"] == "script":
            _run_script(payload, tests, code)
        else:
            _run_module_tests(payload, tests, code)
    except BaseException as exc:  # noqa: BLE001 - e.g. KeyboardInterrupt raised inside a guard
        emit(["x", "tests", outcomes.describe_exception(exc)])
    if _getpid() != owner:
        _exit(0)  # a process the code forked finished the tests too; only the job itself reports
    _flush_std()
    reason = SNAPSHOT[0].check() or _hooks_left(tracer)
    if reason is not None:
        _tampering(reason)
    if covered is not None:
        from sandbox.coverage import stop_coverage

        emit(["c", stop_coverage(covered)])
    emit(["a", _RUN["asserts"]])
    try:
        _end(result_fd, nonce_fd)
    finally:
        _exit(0)
