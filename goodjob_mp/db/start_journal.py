"""Which claimed jobs a worker process has really started, in a file that outlives kill -9.

A worker claims jobs in batches and buffers them, so most claimed jobs have not started when a
process is killed. Writing "started" to the database before each body would cost a round trip
per job; instead each executor writes the job's id into a shared memory-mapped ring *before*
the body runs (a memcpy, no system call). The pages belong to the kernel's page cache, so after
a SIGKILL or OOM kill the supervisor that hands the dead process's jobs back (on this host) reads
exactly which of them had started: only those count as interrupted attempts.

Where no journal exists (another host died, or the file is gone) the hand-back is conservative
and treats every claimed job as started, as before.

The ring holds the last ``SLOTS`` starts; a job started longer ago than that whose result is
still unwritten (a completer stalled for thousands of jobs) reads as not started, so it runs
again without an InterruptedError record. That is the only inexactness.
"""

from __future__ import annotations

import itertools
import mmap
import os
import tempfile
import uuid
from pathlib import Path

SLOTS = 16384
SLOT_SIZE = 16  # uuid bytes
_EMPTY = bytes(SLOT_SIZE)


def journal_dir() -> Path:
    # tmpfs where there is one: no disk write-back for a file that is rewritten constantly.
    base = Path("/dev/shm") if os.path.isdir("/dev/shm") else Path(tempfile.gettempdir())
    return base / f"goodjob_mp-{os.getuid()}"


def journal_path(process_id: uuid.UUID) -> Path:
    return journal_dir() / f"started-{process_id}"


class StartJournal:
    """The writer side, owned by one worker process (created after any fork)."""

    def __init__(self, process_id: uuid.UUID) -> None:
        self.path = journal_path(process_id)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(fd, SLOTS * SLOT_SIZE)
            self._map = mmap.mmap(fd, SLOTS * SLOT_SIZE, mmap.MAP_SHARED, mmap.PROT_WRITE)
        finally:
            os.close(fd)
        # next() on itertools.count is atomic under the GIL: executors need no lock.
        self._next = itertools.count()

    def started(self, job_id: uuid.UUID) -> None:
        """Record that ``job_id``'s body is about to run; call before running it."""
        offset = (next(self._next) % SLOTS) * SLOT_SIZE
        self._map[offset : offset + SLOT_SIZE] = job_id.bytes

    def close(self, *, remove: bool = True) -> None:
        try:
            self._map.close()
        except (ValueError, OSError):
            pass
        if remove:
            self.path.unlink(missing_ok=True)


def read_started(process_id: uuid.UUID) -> set[uuid.UUID] | None:
    """The ids a (dead) process recorded as started, or None when it left no journal here."""
    try:
        data = journal_path(process_id).read_bytes()
    except OSError:
        return None
    started = set()
    for offset in range(0, len(data) - SLOT_SIZE + 1, SLOT_SIZE):
        chunk = data[offset : offset + SLOT_SIZE]
        if chunk != _EMPTY:
            started.add(uuid.UUID(bytes=chunk))
    return started


def remove(process_id: uuid.UUID) -> None:
    journal_path(process_id).unlink(missing_ok=True)
