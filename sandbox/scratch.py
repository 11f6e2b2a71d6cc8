"""The places a job may write, emptied after every job without ever following a path the job could change.

As root, each worker has its own tmpfs on /tmp, /var/tmp and /dev/shm (a size and an inode count cap what a job can
leave there). Kept paths under those directories (a virtual environment in /tmp) are bound in again, read-only,
from descriptors pinned before anything covered them. After a job, once every process it started is dead, the
server removes everything it left with `remove_tree`: every directory is opened relative to its parent with
O_NOFOLLOW, links are unlinked and never followed, mount points are never entered, and the walk keeps one
descriptor and no recursion, so no depth, width or symlink trick can make it touch anything else or fail. If
something still cannot be removed, the worker is replaced (CleanupFailed). The run directory (/tmp/run, sticky and
writable by the job's and the judge's uids) is made anew for each job in an emptied tmpfs, so there is nothing to
follow when the server writes the job's files into it.

Without root, the run directory is a fresh directory in the real /tmp, removed the same way.
(A fresh tmpfs per job was measured too: detaching a mount waits for an RCU grace period, about 0.8 ms per mount
on this VM, three times per job.)
"""

from __future__ import annotations

import os
import stat
import tempfile

from sandbox import linux
from sandbox.hostfs import PRIVATE_TMPS, TMP_BYTES, TMP_INODES, parents_to_create

RUN_DIR = "/tmp/run"
RUN_DIR_MODE = (
    0o1777  # the job's uid and the judge's uid both create files there; neither can remove the other's
)


class CleanupFailed(RuntimeError):
    """The job's leftovers could not be removed: the worker must be replaced before it runs another job."""


class Scratch:
    def __init__(self, private: bool, keep: list[str]) -> None:
        self.private = private
        self.tmps = [t for t in PRIVATE_TMPS if os.path.isdir(t)] if private else []
        kept_here = [k for k in keep if any(k == t or k.startswith(t + "/") for t in self.tmps)]
        # Pinned before the first tmpfs covers them; bound in again after every new mount.
        self.kept = [(path, os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)) for path in kept_here]
        self.kept_parents = parents_to_create(kept_here, self.tmps)
        self.run_dir: str | None = None
        self.kept_names = {os.path.normpath(p) for p in self.kept_parents} | {p for p, _ in self.kept}

    def mount(self) -> None:
        """Once per worker, as root: the private tmpfs mounts, and the kept paths shown again inside them."""
        for path in self.tmps:
            options = f"mode=1777,size={TMP_BYTES.get(path, 64 << 20)},nr_inodes={TMP_INODES}"
            linux.mount("tmpfs", path, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, options)
        for path in self.kept_parents:
            os.mkdir(path, 0o755)
        for path, fd in self.kept:
            os.makedirs(path, mode=0o755, exist_ok=True)
            linux.mount(f"/proc/self/fd/{fd}", path, None, linux.MS_BIND | linux.MS_REC)
            linux.mount(None, path, None, linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY)
            os.close(fd)

    def fresh(self) -> str:
        """An empty run directory in emptied temporary directories; returns it."""
        if not self.private:
            self.run_dir = tempfile.mkdtemp(prefix="sandbox-run-")
            return self.run_dir
        try:
            os.mkdir(RUN_DIR)
            fd = os.open(RUN_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                os.fchmod(fd, RUN_DIR_MODE)
            finally:
                os.close(fd)
        except OSError as exc:
            raise CleanupFailed(f"could not make the run directory: {exc}") from exc
        self.run_dir = RUN_DIR
        return RUN_DIR

    def write(self, name: str, text: str) -> str:
        """Write a file of the job into the run directory (0644, owned by the server); returns its path."""
        assert self.run_dir is not None
        path = os.path.join(self.run_dir, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            data = memoryview(text.encode("utf-8"))
            while data:
                data = data[os.write(fd, data) :]
        finally:
            os.close(fd)
        return path

    def done(self) -> None:
        """After the job's processes are gone: remove everything it wrote (CleanupFailed if that fails)."""
        try:
            if not self.private:
                if self.run_dir is not None:
                    parent, name = os.path.split(self.run_dir)
                    _remove_in(parent, [name])
            else:
                for base in self.tmps:
                    _remove_in(base, None, keep=self.kept_names)
        except OSError as exc:
            raise CleanupFailed(f"could not remove what the job left: {exc}") from exc
        self.run_dir = None


def _remove_in(base: str, names: list[str] | None, keep: set[str] = frozenset()) -> None:
    """Remove `names` (every entry when None) of the directory `base`, except kept paths and mount points."""
    base_fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        device = os.fstat(base_fd).st_dev
        for name in os.listdir(base_fd) if names is None else names:
            if os.path.join(base, name) in keep:
                continue  # leads to a read-only view of the Python install (e.g. a venv under /tmp)
            info = os.stat(name, dir_fd=base_fd, follow_symlinks=False)
            if info.st_dev != device:
                continue  # never into another filesystem
            if stat.S_ISDIR(info.st_mode):
                remove_tree(base_fd, name)
            else:
                os.unlink(name, dir_fd=base_fd)
    finally:
        os.close(base_fd)


def remove_tree(parent_fd: int, name: str) -> None:
    """Remove the directory `name` in `parent_fd` and everything under it, never following a link.

    Iterative, one descriptor open at a time (it climbs back through ".."), so no depth or width can exhaust the
    stack or the descriptor table; call it only once every process that could still change the tree is gone.
    """
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
    path: list[tuple[str, list[str]]] = []  # the names from `name` down to the current directory, with the
    pending = _clear_files(fd)  # subdirectories still to visit at each level
    try:
        while True:
            if pending:
                child = pending.pop()
                try:
                    child_fd = os.open(
                        child, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd
                    )
                except OSError:
                    os.unlink(child, dir_fd=fd)  # replaced by a file or a link meanwhile
                    continue
                path.append((child, pending))
                os.close(fd)
                fd, pending = child_fd, _clear_files(child_fd)
                continue
            if not path:
                break
            up = os.open("..", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = up
            child, pending = path.pop()
            os.rmdir(child, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent_fd)


def _clear_files(fd: int) -> list[str]:
    """Unlink every non-directory in the directory `fd`; return the names of its subdirectories."""
    subdirs = []
    for entry in os.listdir(fd):
        mode = os.stat(entry, dir_fd=fd, follow_symlinks=False).st_mode
        if stat.S_ISDIR(mode):
            subdirs.append(entry)
        else:
            os.unlink(entry, dir_fd=fd)
    return subdirs
