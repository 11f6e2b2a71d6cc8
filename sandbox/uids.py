"""Uid leasing: each worker runs its contestants as one uid and its judges as another, unique on the machine.

A worker's uids are claimed with a lock file in `$TMPDIR/sandbox-uid-locks`, so RLIMIT_NPROC, "kill everything of
this uid" and the per-uid keyrings never touch another worker or another Sandbox running at the same time.
"""

from __future__ import annotations

import fcntl
import os
import random
import tempfile
from dataclasses import dataclass

# Apart from 200000-249999, which earlier versions claimed one uid at a time under other lock names: a machine
# running both never gives one uid to two workers.
UID_BASE = 300000
UID_SLOTS = 25000  # two uids per slot: UID_BASE + 2 * slot (contestant) and the next one (judge)
UID_LOCK_DIR = os.path.join(tempfile.gettempdir(), "sandbox-uid-locks")


@dataclass(frozen=True)
class UidLease:
    contestant: int  # the uid the untrusted code runs as
    judge: int  # the uid the tests run as in the judge mode
    lock_fd: int  # closing it releases both

    @property
    def slot(self) -> int:
        return (self.contestant - UID_BASE) // 2

    def release(self) -> None:
        try:
            os.close(self.lock_fd)
        except OSError:
            pass


def claim_uids() -> UidLease:
    """A pair of uids no other live worker on this machine holds."""
    os.makedirs(UID_LOCK_DIR, exist_ok=True)
    try:
        os.chmod(UID_LOCK_DIR, 0o1777)
    except OSError:
        pass  # someone else's directory; it is already shared
    start = random.randrange(UID_SLOTS)
    for i in range(UID_SLOTS):
        slot = (start + i) % UID_SLOTS
        fd = os.open(os.path.join(UID_LOCK_DIR, f"pair-{slot}"), os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return UidLease(UID_BASE + 2 * slot, UID_BASE + 2 * slot + 1, fd)
        except OSError:
            os.close(fd)
    raise RuntimeError(f"all {UID_SLOTS} sandbox uid pairs are in use (locks in {UID_LOCK_DIR})")
