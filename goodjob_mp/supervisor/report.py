"""What the supervisor tells the world about its pools: the status line (ps, systemd STATUS=),
the probe's answers, and GoodJob's ``good_job_processes.state`` for the supervisor's row.

Pure functions of the arbiter's records (``PoolSlot``/``Child``); never changes them, never
does I/O (except reading this process's own memory for the registry row).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from typing import Any

from goodjob_mp.supervisor.children import Child, ChildState, PoolSlot


def serving(slot: PoolSlot, children: Sequence[Child]) -> list[Child]:
    """The ready children serving ``slot``: its current one, or during a rolling restart the
    old one until its replacement is ready."""
    return [
        c
        for c in children
        if c.pool_index == slot.index and c.state in (ChildState.RUNNING, ChildState.RETIRING)
    ]


def all_started(pools: Sequence[PoolSlot], children: Sequence[Child]) -> bool:
    return all(serving(s, children) for s in pools)


def all_connected(
    pools: Sequence[PoolSlot], children: Sequence[Child], *, listen_notify: bool
) -> bool:
    if not listen_notify:
        return all_started(pools, children)
    return all(any(c.listener for c in serving(s, children)) for s in pools)


def pool_state(slot: PoolSlot) -> str:
    child = slot.current
    if child is None:
        if slot.unreachable:
            return "waiting for the database"
        return "failed" if slot.last_error else "stopped"
    if child.state is ChildState.STARTING:
        return "waiting for the database" if slot.unreachable else "starting"
    return "running" if child.serving else child.state.value


def pool_states(pools: Sequence[PoolSlot]) -> list[dict[str, Any]]:
    states = []
    for slot in pools:
        child = slot.current
        states.append(
            {
                "pool": slot.pool.text,
                "threads": slot.threads,
                "state": pool_state(slot),
                "pid": child.pid if child else None,
                "busy": child.busy if child else 0,
                "listener": child.listener if child else False,
            }
        )
    return states


def metric_pools(pools: Sequence[PoolSlot]) -> list[dict[str, Any]]:
    """Per pool, for ``/metrics``: threads, busy threads and coroutines of its current child,
    and how many children replaced an earlier one."""
    rows = []
    for slot in pools:
        child = slot.current
        rows.append(
            {
                "pool": slot.pool.text,
                "threads": slot.threads,
                "busy": child.busy if child else 0,
                "coroutines": child.coroutines if child else 0,
                "restarts": max(slot.forks - 1, 0),
            }
        )
    return rows


def status_line(
    pools: Sequence[PoolSlot], *, draining: bool, children: int, failed: Mapping[str, str]
) -> str:
    if draining:
        return f"stopping: {children} child(ren) left"
    parts = [f"{p['pool']}={p['state']}" for p in pool_states(pools)]
    line = f"{len(pools)} pools: " + ", ".join(parts)
    if failed:
        line += "; failed: " + ", ".join(sorted(failed))
    return line


def probe_status(
    pools: Sequence[PoolSlot],
    children: Sequence[Child],
    *,
    draining: bool,
    listen_notify: bool,
    pid: int,
    failed: Mapping[str, str],
) -> Any:
    from goodjob_mp.supervisor.probe import ProbeStatus

    detail: dict[str, Any] = {"pools": pool_states(pools), "pid": pid}
    if failed:
        detail["failed_duties"] = dict(failed)
    return ProbeStatus(
        started=all_started(pools, children) and not draining,
        connected=all_connected(pools, children, listen_notify=listen_notify)
        and not draining
        and not failed,
        detail=detail,
    )


def process_state(
    *,
    process_id: Any,
    pid: int,
    status: str,
    settings: Any,
    cron_enabled: bool,
    pools: Sequence[PoolSlot],
) -> dict[str, Any]:
    """GoodJob's ``good_job_processes.state`` shape, for the supervisor's row."""
    try:
        import psutil

        memory = psutil.Process().memory_info().rss // 1024
    except Exception:  # psutil missing or refused: the field is informative only
        memory = None
    pjr = settings.preserve_job_records
    return {
        "id": str(process_id),
        "pid": pid,
        "hostname": socket.gethostname(),
        "proctitle": f"goodjob-supervisor: {status or 'starting'}",
        "memory": memory,
        "preserve_job_records": pjr if isinstance(pjr, (bool, str)) else "callable",
        "retry_on_unhandled_error": settings.retry_on_unhandled_error,
        "cron_enabled": cron_enabled,
        "schedulers": [
            {
                "name": f"goodjob_mp.Supervisor(pool={p['pool']})",
                "queues": p["pool"],
                "max_threads": p["threads"],
                "active_threads": p["busy"],
                "available_threads": p["threads"] - p["busy"],
                "child_pid": p["pid"],
                "state": p["state"],
            }
            for p in pool_states(pools)
        ],
    }
