"""Which mode decides a job: the judge, unless its tests need the solution's own process.

The judge mode (the default) runs the tests in a process of their own and reaches the solution only through
calls, so the solution cannot forge the verdict. Tests that must share the solution's process run in-process:

- they patch or mock it: `unittest.mock` / `mock` / `pytest_mock` imports, or the names `patch`, `mock`, `Mock`,
  `MagicMock`, `AsyncMock`, `PropertyMock`, `create_autospec`, the `monkeypatch` or `mocker` fixtures;
- they look into it: the modules `inspect`, `importlib`, `gc`, `ctypes`, `dis`, `types`, `builtins`, `pickle`,
  `marshal`, `copyreg`; the attributes that reach inside an object (`f.__code__`, `obj.__dict__`, `__class__`,
  `__module__`, `__doc__`, ..., see INTROSPECTION below); the builtins
  `globals`, `locals`, `vars`, `__import__`; `sys.modules`, `sys.stdin` or `sys._getframe`;
- they subclass a class of the solution's (`class Special(solution.Base)`: a handle cannot be a base class);
- they run it in ways a call cannot carry: threads, processes or temporary files made by the tests (`threading`,
  `concurrent`, `multiprocessing`, `subprocess`, `asyncio`, `signal`, `tempfile`), warnings or log records the
  solution emits (`warnings`, `logging`, `assertWarns`, `assertLogs`, `pytest.warns`, `recwarn`, `caplog`).

Everything else, including HumanEval's `check(candidate)`, assert scripts, unittest and pytest modules that
import names from the solution, and every stdio job, is judged. A Job's `isolation` forces either mode.
"""

from __future__ import annotations

import ast
import functools

from sandbox.types import ISOLATIONS

JUDGE, IN_PROCESS = ISOLATIONS
NEEDS_PROCESS_MODULES = frozenset({
    "unittest.mock", "mock", "pytest_mock", "inspect", "importlib", "gc", "ctypes", "dis", "types", "builtins",
    "pickle", "marshal", "copyreg", "threading", "concurrent", "multiprocessing", "subprocess", "asyncio", "signal",
    "tempfile", "warnings", "logging",
})  # fmt: skip
NEEDS_PROCESS_NAMES = frozenset({
    "patch", "mock", "Mock", "MagicMock", "AsyncMock", "PropertyMock", "NonCallableMock", "create_autospec",
    "monkeypatch", "mocker", "globals", "locals", "vars", "__import__", "assertWarns", "assertWarnsRegex",
    "assertLogs", "assertNoLogs", "warns", "deprecated_call", "recwarn", "caplog", "getsource",
})  # fmt: skip
INTROSPECTION = frozenset({
    "__code__", "__globals__", "__closure__", "__defaults__", "__kwdefaults__", "__dict__", "__class__",
    "__module__", "__doc__", "__annotations__", "__wrapped__", "__file__", "__builtins__", "__self__", "__func__",
    "__mro__", "__bases__", "__subclasses__", "__slots__", "__signature__", "__spec__", "__loader__", "__path__",
    "__objclass__", "__traceback__", "__qualname__",
})  # fmt: skip
NEEDS_PROCESS_SYS = frozenset({"modules", "stdin", "_getframe", "settrace", "setprofile"})


def _solution_names(tree: ast.AST, module_name: str) -> set[str]:
    """Names the tests bind to the solution's module or to names imported from it."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == module_name and not node.level:
            names |= {a.asname or a.name for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.asname or a.name for a in node.names if a.name == module_name}
    return names


def _reason(tree: ast.AST, module_name: str) -> str | None:
    solution = _solution_names(tree, module_name)
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for base in node.bases:
                root = base
                while isinstance(root, ast.Attribute):
                    root = root.value
                if isinstance(root, ast.Name) and root.id in solution:
                    return f"subclasses {ast.unparse(base)} of the solution's"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _needs_module(alias.name):
                    return f"imports {alias.name}"
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if _needs_module(node.module):
                return f"imports from {node.module}"
            for alias in node.names:
                if alias.name in NEEDS_PROCESS_NAMES or _needs_module(f"{node.module}.{alias.name}"):
                    return f"imports {node.module}.{alias.name}"
        elif isinstance(node, ast.Name) and node.id in NEEDS_PROCESS_NAMES:
            return f"uses {node.id}"
        elif isinstance(node, ast.arg) and node.arg in NEEDS_PROCESS_NAMES:
            return f"takes the fixture {node.arg}"
        elif isinstance(node, ast.Attribute):
            if node.attr in INTROSPECTION:
                return f"uses the attribute {node.attr}"
            if node.attr in NEEDS_PROCESS_NAMES:
                return f"uses {node.attr}"
            if isinstance(node.value, ast.Name) and node.value.id == "sys" and node.attr in NEEDS_PROCESS_SYS:
                return f"uses sys.{node.attr}"
    return None


def _needs_module(name: str) -> bool:
    parts = name.split(".")
    return any(".".join(parts[: i + 1]) in NEEDS_PROCESS_MODULES for i in range(len(parts)))


@functools.lru_cache(maxsize=1024)
def why_in_process(style: str, tests: str | None, module_name: str = "solution") -> str | None:
    """Why these tests need the solution's process (None: they can be judged)."""
    if style == "stdio" or not tests:
        return None
    try:
        tree = ast.parse(tests)
    except SyntaxError:
        return None  # the judge reports the tests' syntax error
    return _reason(tree, module_name)


def choose(style: str, tests: str | None, forced: str | None = None, module_name: str = "solution") -> str:
    """The mode for a job: `forced` when given, else the judge unless why_in_process() finds a reason."""
    if forced is not None:
        return forced
    return IN_PROCESS if why_in_process(style, tests, module_name) is not None else JUDGE


FRESH_JUDGE_NAMES = frozenset({"eval", "exec", "compile", "breakpoint"})


@functools.lru_cache(maxsize=1024)
def needs_fresh_judge(style: str, tests: str | None) -> bool:
    """Could these tests run code the solution hands them (`eval(candidate(x))`)? Then they get a judge of their
    own, forked for this job, rather than the worker's kept judge: code of the solution's that ran there could
    otherwise reach the verdicts of later jobs."""
    try:
        tree = ast.parse(tests or "")
    except SyntaxError:
        return False
    return any(isinstance(n, ast.Name) and n.id in FRESH_JUDGE_NAMES for n in ast.walk(tree))
