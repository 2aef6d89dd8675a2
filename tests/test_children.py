"""The child state machine and exit policy (pure: plain values, no processes)."""

from __future__ import annotations

import signal
import uuid

import psycopg
import pytest

from goodjob_mp.supervisor.child import start_failure_kind
from goodjob_mp.supervisor.children import (
    TRANSITIONS,
    Child,
    ChildState,
    ExitKind,
    TransitionError,
    classify_exit,
)

S = ChildState
EXIT_0 = 0
EXIT_1 = 1 << 8
KILLED = signal.SIGKILL


def child(*path: ChildState, error_kind: str | None = None) -> Child:
    c = Child(0, 1234, uuid.uuid4(), -1, spawned_at=0.0, error_kind=error_kind)
    for state in path:
        c.move(state, 1.0)
    return c


def test_every_state_can_exit_except_exited_and_nothing_leaves_exited():
    for state, targets in TRANSITIONS.items():
        assert (S.EXITED in targets) == (state is not S.EXITED)
    assert TRANSITIONS[S.EXITED] == frozenset()


def test_illegal_moves_raise():
    with pytest.raises(TransitionError):
        child(S.RUNNING, S.STOPPING, S.RUNNING)
    with pytest.raises(TransitionError):
        child(S.STARTING).move(S.RETIRING, 0.0)  # only a ready child is retired


def test_ready_is_remembered_after_exit():
    c = child(S.RUNNING, S.STOPPING, S.EXITED)
    assert c.ready and c.exited_from is S.STOPPING
    assert not child(S.EXITED).ready


@pytest.mark.parametrize(
    ("path", "status", "draining", "current", "kind"),
    [
        ((S.EXITED,), EXIT_1, False, True, ExitKind.BOOT_FAILED),
        ((S.RUNNING, S.EXITED), EXIT_1, False, True, ExitKind.CRASHED),
        ((S.RUNNING, S.EXITED), KILLED, False, True, ExitKind.CRASHED),
        ((S.RUNNING, S.EXITED), EXIT_0, False, True, ExitKind.CLEAN),
        ((S.RUNNING, S.EXITED), EXIT_1, True, True, ExitKind.EXPECTED),
        ((S.RUNNING, S.STOPPING, S.EXITED), EXIT_1, False, False, ExitKind.EXPECTED),
        ((S.RUNNING, S.KILLED, S.EXITED), KILLED, False, False, ExitKind.EXPECTED),
        ((S.RUNNING, S.RETIRING, S.EXITED), KILLED, False, False, ExitKind.EXPECTED),
        ((S.STOPPING, S.EXITED), EXIT_0, False, False, ExitKind.EXPECTED),
    ],
)
def test_classify_exit(path, status, draining, current, kind):
    assert classify_exit(child(*path), status, draining=draining, current=current) is kind


def test_a_start_up_that_failed_only_for_the_database_is_not_a_boot_failure():
    c = child(S.EXITED, error_kind="database")
    assert classify_exit(c, EXIT_1, draining=False, current=True) is ExitKind.UNREACHABLE


def _unavailable(cause: BaseException) -> BaseException:
    from goodjob_mp.db.connection import DatabaseUnavailableError

    exc = DatabaseUnavailableError("cannot connect to the database")
    exc.__cause__ = cause
    return exc


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (_unavailable(psycopg.OperationalError("connection refused")), "database"),
        (_unavailable(psycopg.errors.CannotConnectNow()), "database"),  # starting up
        (_unavailable(psycopg.errors.TooManyConnections()), "database"),
        (psycopg.OperationalError("server closed the connection"), "database"),
        (_unavailable(psycopg.errors.InvalidPassword()), "app"),
        (_unavailable(psycopg.errors.InvalidCatalogName()), "app"),  # no such database
        (psycopg.errors.UndefinedTable(), "app"),
        (RuntimeError("schema is behind; run goodjob-supervisor migrate"), "app"),
        (ImportError("no module"), "app"),
    ],
)
def test_start_failure_kind(exc, kind):
    assert start_failure_kind(exc) == kind
