"""Write a batch of results so that no result is dropped and one bad row fails alone (issue 15.18).

The completer hands every batch here. A transient failure (connection lost, server restart,
serialization failure) is retried until it succeeds, on a new connection: the jobs stay locked by
this process until their results are written. Any other database error (a data error, a
constraint or a trigger that rejects a row) would fail again the same way, so the batch is
written again one result at a time: the good ones are recorded, and a result whose row is
refused is recorded instead as an error of that attempt (``ResultWriteError``), without the
parts that came from job code (its error text, backtrace, new arguments). Only if even that is
refused is the result left unrecorded, and that is logged as an error and announced as
``result_lost``, never silent.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Callable, Sequence

import psycopg

from goodjob_mp import events
from goodjob_mp.db import job_store
from goodjob_mp.db.job_store import JobResult
from goodjob_mp.execution import UNHANDLED, clean_text

log = logging.getLogger("goodjob_mp.worker")

RESULT_WRITE_ERROR = "goodjob_mp.ResultWriteError"
RETRY_DELAY_MAX = 10.0
# Worth retrying as they are: the connection or the server, not the rows.
TRANSIENT = (psycopg.OperationalError, psycopg.InterfaceError)


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, TRANSIENT)


def unwritable_result(result: JobResult, exc: BaseException) -> JobResult:
    """What to record for an attempt whose own result row was refused: the same attempt (so a
    finished job is not run again and a retry still retries), as an error naming the refusal."""
    reason = " ".join(str(exc).split())[:500]
    error = clean_text(
        f"{RESULT_WRITE_ERROR}: the result of this attempt ({result.outcome}) could not be "
        f"written: {type(exc).__name__}: {reason}"
    )
    return dataclasses.replace(
        result,
        error=error,
        error_event=result.error_event if result.error_event is not None else UNHANDLED,
        new_params=None,
        backtrace=None,
        preserve=True,
        outcome="failed" if result.finished else result.outcome,
    )


class ResultWriter:
    """The completer's writer: ``conn, lost = writer.write(conn, batch)``.

    ``lost`` are the results that matched no row locked by this process (see
    ``job_store.write_results``). ``connect`` opens a replacement connection after a transient
    failure; ``sleep`` waits between retries.
    """

    def __init__(
        self,
        process_id: uuid.UUID,
        name: str,
        connect: Callable[[], psycopg.Connection],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.process_id = process_id
        self.name = name
        self._connect = connect
        self._sleep = sleep

    def write(
        self, conn: psycopg.Connection, batch: Sequence[JobResult]
    ) -> tuple[psycopg.Connection, list[JobResult]]:
        pending = list(batch)
        lost: list[JobResult] = []
        one_by_one = len(pending) == 1
        delay = 0.2
        while pending:
            try:
                if not one_by_one:
                    try:
                        lost.extend(job_store.write_results(conn, pending, self.process_id))
                        return conn, lost
                    except psycopg.Error as exc:
                        if is_transient(exc):
                            raise
                        log.warning(
                            "%s: writing a batch of %d results failed (%s: %s); writing them "
                            "one by one",
                            self.name,
                            len(pending),
                            type(exc).__name__,
                            " ".join(str(exc).split()),
                        )
                        one_by_one = True
                # A result is taken off ``pending`` only once written (or given up on), so a
                # retry after a transient failure never writes, or reports as lost, one twice.
                while pending:
                    lost.extend(self._write_one(conn, pending[0]))
                    pending.pop(0)
            except psycopg.Error as exc:
                if not is_transient(exc):
                    raise
                # Never drop a result: the jobs stay locked by us until it is written.
                log.warning(
                    "%s: writing %d results failed (%s); retrying", self.name, len(pending), exc
                )
                self._sleep(delay)
                delay = min(delay * 2, RETRY_DELAY_MAX)
                try:
                    conn.close()
                    conn = self._connect()
                except Exception:
                    continue
        return conn, lost

    def _write_one(self, conn: psycopg.Connection, result: JobResult) -> list[JobResult]:
        try:
            return job_store.write_results(conn, [result], self.process_id)
        except psycopg.Error as exc:
            if is_transient(exc):
                raise
            refused = exc
        replacement = unwritable_result(result, refused)
        try:
            lost = job_store.write_results(conn, [replacement], self.process_id)
        except psycopg.Error as exc:
            if is_transient(exc):
                raise
            self._give_up(result, refused, exc)
            return []
        log.error(
            "%s: the result of job %s (%s) was refused by the database (%s: %s); recorded as %s",
            self.name,
            result.id,
            result.outcome,
            type(refused).__name__,
            " ".join(str(refused).split()),
            RESULT_WRITE_ERROR,
        )
        return lost

    def _give_up(self, result: JobResult, refused: BaseException, again: BaseException) -> None:
        log.error(
            "%s: the result of job %s (%s) was NOT recorded: the database refused it (%s: %s) "
            "and refused the error record in its place (%s: %s); the job stays locked by this "
            "process until it is handed back, and may run again",
            self.name,
            result.id,
            result.outcome,
            type(refused).__name__,
            " ".join(str(refused).split()),
            type(again).__name__,
            " ".join(str(again).split()),
        )
        if events.has_subscribers("result_lost"):
            events.emit(
                "result_lost",
                job_id=result.id,
                outcome=result.outcome,
                error=f"{type(refused).__name__}: {refused}",
            )
