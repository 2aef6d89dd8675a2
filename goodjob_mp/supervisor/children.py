"""The supervisor's picture of its children: one explicit state per child, and the pools they serve.

Owns: ``ChildState`` and the one table of allowed transitions (``TRANSITIONS``), the ``Child``
and ``PoolSlot`` records, and the pure policy that turns a child's exit into what the arbiter
does next (``classify_exit``). Never sends a signal, forks, reads a pipe or touches the
database: the arbiter does that and records the outcome here with ``Child.move``.

A child's life::

    STARTING --ready--> RUNNING --HUP--> RETIRING (serves until its successor is ready)
        |                  |                 |
        +------------------+-----------------+--TERM--> STOPPING --deadline--> KILLED
        |                  |                                |                    |
        +------------------+--------------------------------+--------------------+--> EXITED

SIGKILL may come from any live state (QUIT, a silent child, a drain deadline), and a child can
exit on its own from any live state.
"""

from __future__ import annotations

import enum
import os
import uuid
from dataclasses import dataclass

from goodjob_mp.queues import PoolSpec


class ChildState(enum.Enum):
    STARTING = "starting"  # forked; has not reported ready yet
    RUNNING = "running"  # reported ready; the pool's serving child
    RETIRING = "retiring"  # replaced (HUP): still serves until its successor is ready
    STOPPING = "stopping"  # sent TERM: claims nothing more, finishes its running jobs
    KILLED = "killed"  # sent SIGKILL
    EXITED = "exited"  # reaped


S = ChildState
TRANSITIONS: dict[ChildState, frozenset[ChildState]] = {
    S.STARTING: frozenset({S.RUNNING, S.STOPPING, S.KILLED, S.EXITED}),
    S.RUNNING: frozenset({S.RETIRING, S.STOPPING, S.KILLED, S.EXITED}),
    S.RETIRING: frozenset({S.STOPPING, S.KILLED, S.EXITED}),
    S.STOPPING: frozenset({S.KILLED, S.EXITED}),
    S.KILLED: frozenset({S.EXITED}),
    S.EXITED: frozenset(),
}
# States in which the child serves its pool (claims and runs jobs).
SERVING = frozenset({S.RUNNING, S.RETIRING})
# States the supervisor put the child in on purpose: its exit is expected, never a crash.
STOPPED_BY_US = frozenset({S.STOPPING, S.KILLED})


class TransitionError(RuntimeError):
    """A bug in the arbiter: it tried a move the state table does not allow."""


@dataclass
class Child:
    """One forked worker process: its state and what it last reported on its status pipe."""

    pool_index: int
    pid: int
    process_id: uuid.UUID
    fd: int
    spawned_at: float
    state: ChildState = S.STARTING
    state_since: float = 0.0
    # Why the supervisor stopped or killed it ("HUP", "memory", "silent", "shutdown", ...).
    reason: str = ""
    # When it gets SIGKILL if it has not exited (set with STOPPING; None: wait as long as needed).
    kill_at: float | None = None
    buffer: bytes = b""
    listener: bool = False
    busy: int = 0
    coroutines: int = 0  # async def jobs running on its event loop
    idle: float = 0.0
    last_report: float = 0.0
    error: str | None = None
    error_kind: str | None = None  # "database" when start-up failed only for want of a database
    exit_status: int | None = None
    exited_from: ChildState | None = None
    ready: bool = False  # it has reported ready at some point (it may be stopping now)

    def move(self, new: ChildState, now: float, reason: str = "") -> None:
        if new not in TRANSITIONS[self.state]:
            raise TransitionError(f"child {self.pid}: {self.state.value} -> {new.value}")
        if new is S.EXITED:
            self.exited_from = self.state
        if new is S.RUNNING:
            self.ready = True
        self.state, self.state_since = new, now
        if reason:
            self.reason = reason

    @property
    def alive(self) -> bool:
        return self.state is not S.EXITED

    @property
    def serving(self) -> bool:
        return self.state in SERVING


@dataclass
class PoolSlot:
    """One pool of ``--queues``: its current child and its restart bookkeeping."""

    index: int
    pool: PoolSpec
    threads: int
    current: Child | None = None
    boot_failures: int = 0  # in a row, counted only for "the app or schema is broken"
    unreachable: int = 0  # start-ups in a row that failed for want of a database
    crashes: int = 0
    forks: int = 0  # children started for this pool; all but the first were restarts
    restart_at: float = 0.0
    last_error: str | None = None


class ExitKind(enum.Enum):
    EXPECTED = "expected"  # we stopped it (drain, HUP, memory, silent); its successor is handled
    CLEAN = "clean"  # it stopped itself cleanly (e.g. TERM sent to the child): replace at once
    BOOT_FAILED = "boot_failed"  # died before ready: the app or schema is broken (3 strikes)
    UNREACHABLE = "unreachable"  # died before ready only because the database is unreachable
    CRASHED = "crashed"  # died while serving: restart with back-off


def classify_exit(child: Child, status: int, *, draining: bool, current: bool) -> ExitKind:
    """What a reaped child's exit means. ``current``: it was its pool's serving child."""
    before = child.exited_from or child.state
    if draining or before in STOPPED_BY_US or not current:
        return ExitKind.EXPECTED
    if before is S.STARTING:
        return ExitKind.UNREACHABLE if child.error_kind == "database" else ExitKind.BOOT_FAILED
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        return ExitKind.CLEAN
    return ExitKind.CRASHED


def describe_status(status: int) -> str:
    import signal

    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"
