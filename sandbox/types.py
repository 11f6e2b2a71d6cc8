"""Plain data passed in and out of the sandbox: limits, jobs and results (all JSON-serialisable)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

STYLES = ("script", "unittest", "pytest", "stdio")
# How a job's verdict is decided: by a judge process that runs the tests apart from the solution, or in the
# solution's own process (for tests that need it; such a verdict could be forged). See sandbox/isolation.py.
ISOLATIONS = ("judge", "in_process")
# Host -> server framing: each request is its length in this many bytes (ASCII digits and a newline), then
# the JSON request itself.
REQUEST_HEADER_BYTES = 16
STATUSES = (
    "passed",
    "failed",
    "error",
    "timeout",
    "memory_limit",
    "output_limit",
    "crashed",
    "syntax_error",
    "tampering",
)


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 10.0
    memory_mb: int = 2048
    output_bytes: int = 65536
    # RLIMIT_NPROC for the run's unprivileged uid: contains fork and thread bombs.
    max_processes: int = 64
    # RLIMIT_FSIZE and the size of the run's private /tmp: contains huge files.
    file_mb: int = 64

    def __post_init__(self) -> None:
        if self.timeout_s <= 0 or self.memory_mb <= 0 or self.output_bytes <= 0:
            raise ValueError(f"Limits must be positive, got {self}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Limits:
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


@dataclass
class Job:
    code: str
    tests: str | None = None
    style: str = "script"
    stdin: str | None = None
    expected_stdout: str | None = None
    limits: Limits | None = None
    module_name: str = "solution"
    # Trusted line coverage of `code` (Result.covered_lines / line_coverage); off costs nothing.
    coverage: bool = False
    # "judge", "in_process", or None: chosen from the tests by the rule in sandbox/isolation.py.
    isolation: str | None = None

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"unknown test style {self.style!r}: use one of {', '.join(STYLES)}")
        if self.style != "stdio" and self.tests is None:
            raise ValueError(f"style {self.style!r} needs `tests` (only 'stdio' may omit them)")
        if self.style == "stdio" and self.expected_stdout is None:
            raise ValueError("style 'stdio' needs `expected_stdout`")
        if not self.module_name.isidentifier():
            raise ValueError(f"module_name {self.module_name!r} is not a Python identifier")
        if self.isolation is not None and self.isolation not in ISOLATIONS:
            raise ValueError(
                f"unknown isolation {self.isolation!r}: use one of {', '.join(ISOLATIONS)} or None"
            )
        if self.style == "stdio" and self.isolation == "in_process":
            raise ValueError("stdio jobs are always judged outside the program (isolation 'judge' or None)")


@dataclass
class Result:
    status: str
    error_type: str | None = None
    message: str = ""
    failing_test: str | None = None
    traceback: str = ""
    tests_run: int = 0
    tests_failed: int = 0
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    wall_ms: float = 0.0
    cpu_ms: float = 0.0
    # Which mode decided the verdict: "judge" (tests in another process, the verdict cannot be forged by the code)
    # or "in_process" (the code shared the tests' process); "" for a job that never reached a worker.
    isolation: str = ""
    # The protections this run had (net_namespace, readonly_root, memory_cgroup, ...; see `Sandbox.protections`).
    protections: list[str] = field(default_factory=list)
    # Only for jobs run with coverage=True: the lines of `code` that ran (None when the job sent no report),
    # and the lines that could run, computed by the host from the compiled code (None if it does not compile).
    covered_lines: list[int] | None = None
    executable_lines: list[int] | None = None

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def line_coverage(self) -> float | None:
        """Share of the code's executable lines that ran, or None when it was not measured."""
        if self.covered_lines is None or not self.executable_lines:
            return None
        executable = set(self.executable_lines)
        return len(executable.intersection(self.covered_lines)) / len(executable)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Result:
        if isinstance(
            d.get("isolation"), list
        ):  # stored before there were two modes: it held the protections
            d = dict(d, protections=d["isolation"], isolation="in_process")
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown Result fields: {sorted(unknown)}")
        if d.get("status") not in STATUSES:
            raise ValueError(f"unknown Result status {d.get('status')!r}")
        return cls(**d)
