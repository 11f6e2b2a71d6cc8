"""The host filesystem as workers see it: home directories hidden, a read-only root, private temporary dirs.

Home directories hold the invoking user's secrets; they are replaced by empty directories, except for the Python
installation, the import path and this package, which jobs need to read. The temporary directories become private
tmpfs mounts (a fresh one for every job, see sandbox/scratch.py), so a virtual environment or checkout under /tmp
is shown again, read-only, the same way.
"""

from __future__ import annotations

import os
import shutil
import sys

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOME_DIRS = ("/root", "/home")
# Directories every worker gets as private, empty tmpfs mounts, with their sizes (RAM-backed, counted in the
# job's memory cgroup where there is one) and inode counts (so that clearing one never takes long).
PRIVATE_TMPS = ("/tmp", "/var/tmp", "/dev/shm")
TMP_BYTES = {"/tmp": 512 << 20, "/var/tmp": 64 << 20, "/dev/shm": 64 << 20}
TMP_INODES = 65536


def _inside(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _parents_between(home: str, path: str) -> list[str]:
    """Directories strictly between `home` and `path`, outermost first."""
    if not _inside(path, home) or path == home:
        return []
    parts, current = [], os.path.dirname(path)
    while current != home and _inside(current, home):
        parts.append(current)
        current = os.path.dirname(current)
    return parts[::-1]


def home_views() -> tuple[list[str], list[str]]:
    """(home directories to hide, paths inside them or inside the private temp dirs to show read-only again)."""
    hidden = [h for h in HOME_DIRS if os.path.isdir(h)]
    covered = hidden + [t for t in PRIVATE_TMPS if os.path.isdir(t)]
    wanted = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(sys.executable), PACKAGE_ROOT}
    wanted |= {p for p in sys.path if p and os.path.isabs(p)}
    keep = set()
    for path in wanted:
        real = os.path.realpath(path)
        if os.path.isdir(real) and any(_inside(real, c) for c in covered):
            keep.add(real)
    keep = {p for p in keep if not any(q != p and _inside(p, q) for q in keep)}
    return hidden, sorted(keep)


def parents_to_create(keep: list[str], covered: list[str]) -> list[str]:
    """Directories to create (0755) so that each kept path can be shown again inside a covered directory."""
    return sorted({p for k in keep for c in covered for p in _parents_between(c, k)}, key=len)


def bwrap_command() -> list[str] | None:
    """bubblewrap arguments for a worker: read-only root, hidden homes, no network; None if unavailable.

    The private temporary directories are mounted by the server itself, fresh for every job.
    """
    path = shutil.which("bwrap")
    if path is None:
        return None
    hidden, keep = home_views()
    homes = [arg for h in hidden for arg in ("--tmpfs", h)]
    # bwrap creates missing parent directories 0700; the job's uid must be able to walk through them.
    shown = [arg for d in parents_to_create(keep, hidden) for arg in ("--perms", "0755", "--dir", d)]
    shown += [arg for k in keep if any(_inside(k, h) for h in hidden) for arg in ("--ro-bind", k, k)]
    return [
        path,
        "--ro-bind", "/", "/",
        "--dev", "/dev",
        "--dir", "/dev/shm",
        "--proc", "/proc",
        *homes, *shown,
        "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-pid",
        "--die-with-parent",
        "--",
    ]  # fmt: skip
