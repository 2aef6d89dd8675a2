"""The supervisor's row and its advisory lock (issue 13.3): the row says lock_type 0 only while
the lock is held, the lock is held without a gap from start-up through child forks and
restarts, and a forked child never touches the parent's session. GoodJob's own
``Process.cleanup`` runs against a real supervisor the whole time and must never delete a live
process's row."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from goodjob_mp.cli import supervisor_command
from goodjob_mp.db import processes
from goodjob_mp.supervisor.maintenance import Registry
from tests.goodjob_emulation import GOODJOB_CLEANUP, goodjob_key
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parent.parent

HOLDERS = """
SELECT pid FROM pg_locks
WHERE locktype = 'advisory' AND granted AND objsubid = 1
  AND ((classid::bigint << 32) | objid::bigint) = %s
"""


def lock_holders(conn: psycopg.Connection, process_id: uuid.UUID) -> list[int]:
    key = goodjob_key("good_job_processes", process_id)
    return [row[0] for row in conn.execute(HOLDERS, (key,))]


# --- register ---------------------------------------------------------------------------------


def test_register_writes_lock_type_0_only_when_it_holds_the_lock(db, database_url):
    process_id = uuid.uuid4()
    with (
        psycopg.connect(database_url, autocommit=True) as holder,
        psycopg.connect(database_url, autocommit=True) as other,
    ):
        holder.execute(
            "SELECT pg_advisory_lock(%s)", (goodjob_key("good_job_processes", process_id),)
        )
        assert not processes.register_process(other, process_id, {})
        row = db.execute("SELECT lock_type FROM good_job_processes WHERE id = %s", (process_id,))
        assert row.fetchone() == (None,)
        holder.execute("SELECT pg_advisory_unlock_all()")
        assert processes.register_process(other, process_id, {})
        row = db.execute("SELECT lock_type FROM good_job_processes WHERE id = %s", (process_id,))
        assert row.fetchone() == (0,)


def test_registering_twice_then_deregistering_releases_the_lock(db, database_url):
    """Advisory locks count re-entries: a re-register must not leave a lock behind."""
    process_id = uuid.uuid4()
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert processes.register_process(conn, process_id, {})
        assert processes.register_process(conn, process_id, {})
        assert processes.deregister_process(conn, process_id)
        assert lock_holders(db, process_id) == []


# --- fork -------------------------------------------------------------------------------------


def _fork_and_wait(child_body) -> int:
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            child_body()
            gc.collect()
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.parametrize("tell_child", [True, False], ids=["after_fork_in_child", "pid-guard"])
def test_a_forked_child_never_ends_the_parents_session(db, tell_child):
    registry = Registry(uuid.uuid4(), lambda: {"pid": os.getpid()})
    registry.open()
    try:
        backend = registry._conn.info.backend_pid
        assert lock_holders(db, registry.process_id) == [backend]

        def child() -> None:
            if tell_child:
                registry.after_fork_in_child()
            # Everything a confused child could do with the parent's registry:
            registry.heartbeat()
            registry.sweep(20.0)
            registry.deregister()
            registry.close()
            del registry._conn

        assert _fork_and_wait(child) == 0
        assert lock_holders(db, registry.process_id) == [backend]
        assert registry._conn.execute("SELECT pg_backend_pid()").fetchone() == (backend,)
        row = db.execute(
            "SELECT lock_type FROM good_job_processes WHERE id = %s", (registry.process_id,)
        )
        assert row.fetchone() == (0,)
    finally:
        registry.deregister()
    assert lock_holders(db, registry.process_id) == []


# --- a real supervisor under GoodJob's cleanup ------------------------------------------------


class GoodJobCleanup(threading.Thread):
    """Runs GoodJob's Process.cleanup in a loop and watches the supervisor's lock."""

    def __init__(self, database_url: str, supervisor_pid: int) -> None:
        super().__init__(daemon=True)
        self.url = database_url
        self.supervisor_pid = supervisor_pid
        self.stop = threading.Event()
        self.deleted: list[tuple[uuid.UUID, int]] = []
        self.supervisor_row: uuid.UUID | None = None
        self.holders: set[int] = set()
        self.gaps = 0  # passes where the row existed and no session held its lock
        self.passes = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                while not self.stop.is_set():
                    self.deleted += conn.execute(GOODJOB_CLEANUP).fetchall()
                    if self.supervisor_row is None:
                        row = conn.execute(
                            "SELECT id FROM good_job_processes WHERE (state->>'pid')::int = %s",
                            (self.supervisor_pid,),
                        ).fetchone()
                        self.supervisor_row = row[0] if row else None
                    if self.supervisor_row is not None:
                        holders = lock_holders(conn, self.supervisor_row)
                        self.holders.update(holders)
                        self.gaps += not holders
                        self.passes += 1
                    time.sleep(0.005)
        except BaseException as exc:  # surfaced by the test
            self.error = exc


def child_rows(db: psycopg.Connection, supervisor_pid: int) -> dict[int, uuid.UUID]:
    rows = db.execute(
        "SELECT (state->>'pid')::int, id FROM good_job_processes WHERE (state->>'pid')::int <> %s",
        (supervisor_pid,),
    )
    return dict(rows.fetchall())


def test_the_supervisors_lock_is_held_from_start_up_through_a_child_restart(
    db, database_url, tmp_path
):
    log_path = tmp_path / "sup.log"
    env = {**os.environ, "GOOD_JOB_POLL_INTERVAL": "1"}
    with open(log_path, "wb") as log:
        sup = subprocess.Popen(
            [*supervisor_command(), "--app", "tests.jobs_for_tests", "--queues=*:1"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    cleanup = GoodJobCleanup(database_url, sup.pid)
    cleanup.start()

    def output() -> str:
        return log_path.read_text(errors="replace")

    try:
        assert wait_for(lambda: len(child_rows(db, sup.pid)) == 1, 60), output()
        [first_child] = child_rows(db, sup.pid)
        os.kill(first_child, signal.SIGKILL)
        assert wait_for(lambda: any(pid != first_child for pid in child_rows(db, sup.pid)), 60), (
            output()
        )
        passes = cleanup.passes
        assert wait_for(lambda: cleanup.passes > passes + 20, 30)  # keep watching a while
    finally:
        cleanup.stop.set()
        cleanup.join(30)
        sup.send_signal(signal.SIGTERM)
        try:
            sup.wait(30)
        except subprocess.TimeoutExpired:
            sup.kill()
            sup.wait(10)
    assert cleanup.error is None, cleanup.error
    assert cleanup.supervisor_row is not None
    assert cleanup.gaps == 0, f"the supervisor's lock was free in {cleanup.gaps} passes"
    assert len(cleanup.holders) == 1, "the lock moved to another session (it was released)"
    deleted_pids = {pid for _, pid in cleanup.deleted}
    assert deleted_pids <= {first_child}, (cleanup.deleted, output())
    assert sup.returncode == 0, output()
