"""The places a job may write, made new for every job: the root server never walks a tree a job has touched.

As root, the server mounts a fresh tmpfs on /tmp, /var/tmp and /dev/shm before each job and detaches the previous
ones: whatever a job left (symlinks, a million files, a 100000-deep directory) goes with its tmpfs, which the kernel
frees once no process uses it. Kept paths under those directories (a virtual environment in /tmp) are bound in
again, read-only, from descriptors pinned before anything covered them. The run directory (/tmp/run, sticky and
writable by the job's and the judge's uids) and the files the server writes into it are made in a tmpfs no job has
seen yet, so there is nothing to follow.

Without root, the run directory is a fresh directory in the real /tmp, removed after the job by `remove_tree`, which
opens every directory relative to its parent without following links and keeps one descriptor at a time.
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
        self.mounted = False

    def fresh(self) -> str:
        """A new, empty set of temporary directories and an empty run directory; returns the run directory."""
        if not self.private:
            self.run_dir = tempfile.mkdtemp(prefix="sandbox-run-")
            return self.run_dir
        try:
            for path in self.tmps:
                if self.mounted:
                    linux.umount(path, linux.MNT_DETACH)  # freed when the last process using it is gone
                options = f"mode=1777,size={TMP_BYTES.get(path, 64 << 20)},nr_inodes={TMP_INODES}"
                linux.mount("tmpfs", path, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, options)
            self.mounted = True
            for path in self.kept_parents:
                os.mkdir(path, 0o755)
            for path, fd in self.kept:
                os.makedirs(path, mode=0o755, exist_ok=True)
                linux.mount(f"/proc/self/fd/{fd}", path, None, linux.MS_BIND | linux.MS_REC)
                linux.mount(None, path, None, linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY)
            os.mkdir(RUN_DIR)
            os.chmod(RUN_DIR, RUN_DIR_MODE)
        except OSError as exc:
            raise CleanupFailed(f"could not make fresh temporary directories: {exc}") from exc
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
        """After the job's processes are gone: drop what it wrote (private mounts go at the next fresh())."""
        if not self.private and self.run_dir is not None:
            parent, name = os.path.split(self.run_dir)
            parent_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                remove_tree(parent_fd, name)
            except OSError as exc:
                raise CleanupFailed(f"could not remove {self.run_dir}: {exc}") from exc
            finally:
                os.close(parent_fd)
        self.run_dir = None


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
