"""Thin ctypes wrappers over the Linux calls Python 3.11 lacks (unshare, mount, mount_setattr, prctl, keyctl).

Every function raises OSError with errno set, so callers can record a missing protection instead of crashing.
"""

from __future__ import annotations

import ctypes
import os
import platform

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWNET = 0x40000000
CLONE_NEWPID = 0x20000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MNT_DETACH = 2
MS_PRIVATE = 1 << 18

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38

# mount_setattr(2) (Linux 5.12): change the flags of a whole mount tree at once.
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
# keyctl(2) operations and the special keyring ids they take.
KEYCTL_JOIN_SESSION_KEYRING = 1
KEYCTL_CLEAR = 7
KEY_SPEC_USER_KEYRING = -4
KEY_SPEC_USER_SESSION_KEYRING = -5
F_SETPIPE_SZ = 1031
_SYSCALLS = {  # name -> number, per architecture (the ones glibc may lack wrappers for)
    "x86_64": {"mount_setattr": 442, "keyctl": 250},
    "aarch64": {"mount_setattr": 442, "keyctl": 219},
}.get(platform.machine(), {})

# The process's own symbols include libc's; ctypes.util.find_library would import subprocess and threading into
# every worker (threading's after-fork hook alone costs each forked job about 100 page faults).
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_libc.syscall.restype = ctypes.c_long


class MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def mount(
    source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None
) -> None:
    def enc(s: str | None) -> bytes | None:
        return None if s is None else s.encode()

    _check(_libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def prctl(option: int, arg: int = 0) -> None:
    _check(_libc.prctl(option, arg, 0, 0, 0), "prctl")


def umount(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(target.encode(), flags), f"umount {target}")


def _syscall(name: str, *args: object) -> int:
    number = _SYSCALLS.get(name)
    if number is None:
        raise OSError(38, f"{name}: not known on {platform.machine()}")  # ENOSYS
    rc = _libc.syscall(ctypes.c_long(number), *args)
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")
    return rc


def make_tree_readonly(path: str) -> None:
    """Make the mount at `path` and every mount below it read-only (in this mount namespace only)."""
    attr = MountAttr(attr_set=MOUNT_ATTR_RDONLY)
    _syscall(
        "mount_setattr", ctypes.c_int(-100), ctypes.c_char_p(path.encode()), ctypes.c_uint(AT_RECURSIVE),
        ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)),
    )  # fmt: skip


def keyctl(operation: int, arg2: int = 0) -> int:
    return _syscall(
        "keyctl", ctypes.c_int(operation), ctypes.c_long(arg2), ctypes.c_long(0), ctypes.c_long(0)
    )


def fresh_keyrings(clear_user_keyrings: bool) -> None:
    """Join a new, empty session keyring; with `clear_user_keyrings`, also empty this uid's keyrings.

    The session keyring is inherited from whoever started the Sandbox; a job that possesses it can read the
    keys in it. The per-uid keyrings outlive the processes of a uid, so a job could leave keys for the next one.
    """
    if clear_user_keyrings:
        for ring in (KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING):
            keyctl(KEYCTL_CLEAR, ring)
    keyctl(KEYCTL_JOIN_SESSION_KEYRING, 0)


IPC_RMID = 0


def remove_sysv_ipc() -> int:
    """Remove every System V shared memory segment, semaphore set and message queue this IPC namespace has.

    Only for a private IPC namespace (a worker's): jobs could otherwise leave memory behind for later jobs.
    Returns how many objects were removed.
    """
    removed = 0
    for kind, remove in (
        ("shm", lambda i: _libc.shmctl(i, IPC_RMID, None)),
        ("sem", lambda i: _libc.semctl(i, 0, IPC_RMID)),
        ("msg", lambda i: _libc.msgctl(i, IPC_RMID, None)),
    ):
        try:
            fd = os.open(f"/proc/sysvipc/{kind}", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            table = os.read(fd, 1 << 16)
            while chunk := os.read(fd, 1 << 16):
                table += chunk
        finally:
            os.close(fd)
        rows = table.decode().splitlines()[1:]  # a header line, then one row per object
        for row in rows:
            fields = row.split()
            if len(fields) > 1 and remove(int(fields[1])) == 0:
                removed += 1
    return removed
