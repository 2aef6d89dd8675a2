"""The dashboard: a plain ASGI application (Starlette), server-rendered with Jinja2.

Owns routing, rendering and the request guards (auth hook, CSRF on every POST, read-only mode,
security headers). Every read and action goes through ``goodjob_mp.db.admin`` (and
``goodjob_mp.cron`` for switches and manual runs), so the ``jobs`` and ``cron`` commands and the
pages do exactly the same thing. Never imports the worker.

Mountable under any path prefix: links are built from the request's ``root_path``, so the same
app works at ``/`` (``goodjob-supervisor dashboard``) and at ``/jobs`` inside FastAPI, Django or
Flask. Connections come from a small pool opened on first use in the serving process (so a
server that forks its workers after importing the app shares nothing across the fork).
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import logging
import os
import secrets
import threading
import uuid
from collections.abc import Callable, Mapping, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psycopg
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from psycopg_pool import ConnectionPool, PoolTimeout
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from goodjob_mp.db import admin
from goodjob_mp.db.connection import DatabaseUnavailableError
from goodjob_mp.web import charts
from goodjob_mp.web.security import (
    CSRF_COOKIE,
    CSRF_FIELD,
    SECURITY_HEADERS,
    AuthHook,
    BasicAuth,
    csrf_ok,
    csrf_token_valid,
    new_csrf_token,
    origin_ok,
)

log = logging.getLogger("goodjob_mp.web")
HERE = Path(__file__).resolve().parent
# Forms are a token, an action and at most a page of job ids: anything larger is refused unread.
MAX_FORM_BYTES = 256 * 1024
UTC = dt.timezone.utc
NAV = (
    ("jobs", "Jobs"),
    ("cron", "Cron"),
    ("processes", "Processes"),
    ("batches", "Batches"),
    ("pauses", "Pauses"),
    ("performance", "Performance"),
)
ACTION_WORDS = {
    "retry": ("Retry", "retried"),
    "discard": ("Discard", "discarded"),
    "reschedule": ("Run now", "rescheduled to run now"),
    "destroy": ("Destroy", "destroyed"),
}
ERROR_EVENTS = {
    0: "interrupted",
    1: "unhandled",
    2: "handled",
    3: "retried",
    4: "retry stopped",
    5: "discarded",
}


class Dashboard:
    """The dashboard's state: settings, the connection pool, the templates, the cron entries."""

    def __init__(
        self,
        *,
        database_url: str | None = None,
        auth: AuthHook | None = None,
        read_only: bool = False,
        secret: bytes | None = None,
        cron_entries: Mapping[str, Any] | None = None,
        pool_size: int = 4,
    ) -> None:
        self.database_url = database_url
        self.auth = auth
        self.read_only = read_only
        self.secret = secret or secrets.token_bytes(32)
        self._cron_entries = cron_entries
        self.pool_size = pool_size
        self._pool: ConnectionPool | None = None
        self._pool_pid = 0
        self._lock = threading.Lock()
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters.update(
            ago=_ago,
            utc=_utc,
            duration=_duration,
            pretty_json=_pretty_json,
            compact_json=lambda v: json.dumps(v, ensure_ascii=False, default=str),
            error_event=lambda code: ERROR_EVENTS.get(code, "-" if code is None else str(code)),
            kb=_kb,
        )

    # --- connections ----------------------------------------------------------------------

    def pool(self) -> ConnectionPool:
        # A pool made before a fork belongs to the parent: abandon it (its threads did not
        # survive the fork; closing its connections would end the parent's sessions).
        with self._lock:
            if self._pool is None or self._pool_pid != os.getpid():
                from goodjob_mp.db.connection import database_url, session_conninfo
                from goodjob_mp.db.jsonb import use_safe_loads

                conninfo = session_conninfo(self.database_url or database_url())
                # One plain connection first: an unreachable database fails this request within
                # connect_timeout, instead of after the pool's wait (the next request retries).
                psycopg.connect(conninfo).close()
                self._pool = ConnectionPool(
                    conninfo,
                    min_size=1,
                    max_size=self.pool_size,
                    kwargs={"autocommit": True},
                    # a jsonb value too deep to decode shows as unreadable, not as a 500
                    configure=use_safe_loads,
                    open=True,
                    name="goodjob-dashboard",
                    timeout=10,
                )
                self._pool_pid = os.getpid()
            return self._pool

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with self.pool().connection() as conn:
            return fn(conn, *args, **kwargs)

    def close(self) -> None:
        with self._lock:
            if self._pool is not None and self._pool_pid == os.getpid():
                self._pool.close()
            self._pool = None

    def cron_entries(self) -> Mapping[str, Any]:
        if self._cron_entries is None:
            from goodjob_mp.config import current_settings
            from goodjob_mp.cron import validate_cron_entries

            self._cron_entries = validate_cron_entries(current_settings())
        return self._cron_entries

    # --- rendering ------------------------------------------------------------------------

    def render(
        self, request: Request, name: str, context: dict[str, Any], status: int = 200
    ) -> Response:
        cookie = request.cookies.get(CSRF_COOKIE)
        if cookie is not None and csrf_token_valid(self.secret, cookie):
            token, fresh = cookie, False
        else:
            token, fresh = new_csrf_token(self.secret), True
        root = request.scope.get("root_path", "").rstrip("/")
        context = {"page": "", **context}
        html = self.templates.get_template(name).render(
            request=request,
            root=root,
            nav=NAV,
            read_only=self.read_only,
            csrf_field=CSRF_FIELD,
            csrf_token=token,
            url=lambda path, **query: _url(root, path, query),
            action_words=ACTION_WORDS,
            **context,
        )
        response = HTMLResponse(html, status_code=status)
        if fresh:
            response.set_cookie(
                CSRF_COOKIE,
                token,
                httponly=True,
                samesite="strict",
                path=(root or "") + "/",
                secure=request.url.scheme == "https",
            )
        return response

    def redirect(self, request: Request, path: str, **query: Any) -> RedirectResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return RedirectResponse(_url(root, path, query), status_code=303)

    def error(self, request: Request, status: int, message: str) -> Response:
        return self.render(request, "error.html", {"status": status, "message": message}, status)


def _url(root: str, path: str, query: Mapping[str, Any]) -> str:
    clean = {k: v for k, v in query.items() if v is not None and v != ""}
    return f"{root}{path}" + (f"?{urlencode(clean)}" if clean else "")


# --- template filters (pure) ------------------------------------------------------------------


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utc(value: dt.datetime | None) -> str:
    if value is None:
        return "-"
    return _aware(value).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ago(value: dt.datetime | None, now: dt.datetime | None = None) -> str:
    """How long ago (or until), e.g. "3 min ago" or "in 2 h"; pure given ``now``."""
    if value is None:
        return "-"
    now = now or dt.datetime.now(UTC)
    seconds = (now - _aware(value)).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min"), (1, "s")):
        if seconds >= size or unit == "s":
            text = f"{int(seconds // size)} {unit}"
            break
    return f"in {text}" if future else f"{text} ago"


def _duration(value: dt.timedelta | None) -> str:
    if value is None:
        return "-"
    return charts.format_seconds(value.total_seconds())


def _pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def _kb(value: int | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1024:.1f} MB" if value >= 1024 else f"{value} KB"


# --- the application --------------------------------------------------------------------------


def create_app(
    *,
    database_url: str | None = None,
    auth: AuthHook | None = None,
    read_only: bool = False,
    secret: bytes | None = None,
    cron_entries: Mapping[str, Any] | None = None,
) -> Starlette:
    """The dashboard as an ASGI app.

    ``database_url``: defaults to goodjob_mp's own resolution (GOOD_JOB_DATABASE_URL, ...).
    ``auth``: ``BasicAuth(user, password)`` or ``callable(request) -> bool``; None lets everyone
    in (fine on 127.0.0.1 only). ``read_only``: pages only, every action refused.
    ``secret``: signs CSRF tokens; random per process by default. ``cron_entries``: parsed
    entries; default: the configured ones (``configure(cron=...)`` / GOOD_JOB_CRON).
    """
    dash = Dashboard(
        database_url=database_url,
        auth=auth,
        read_only=read_only,
        secret=secret,
        cron_entries=cron_entries,
    )
    routes = [
        Route("/", lambda request: dash.redirect(request, "/jobs")),
        Route("/jobs", _endpoint(dash, jobs_page)),
        Route("/jobs/bulk", _endpoint(dash, bulk_action), methods=["POST"]),
        Route("/jobs/{job_id}", _endpoint(dash, job_page)),
        Route("/jobs/{job_id}/{action}", _endpoint(dash, job_action), methods=["POST"]),
        Route("/cron", _endpoint(dash, cron_page)),
        Route("/cron/{key}/{action}", _endpoint(dash, cron_action), methods=["POST"]),
        Route("/processes", _endpoint(dash, processes_page)),
        Route("/performance", _endpoint(dash, performance_page)),
        Route("/batches", _endpoint(dash, batches_page)),
        Route("/batches/{batch_id}", _endpoint(dash, batch_page)),
        Route("/pauses", _endpoint(dash, pauses_page)),
        Route("/pauses/{action}", _endpoint(dash, pause_action), methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.dashboard = dash
    app.add_middleware(_Guard, dash=dash)
    return app


def _endpoint(dash: Dashboard, handler: Callable[..., Any]) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(dash, request)
        except admin.FilterError as exc:
            return dash.error(request, 400, str(exc))
        except (psycopg.OperationalError, PoolTimeout, DatabaseUnavailableError) as exc:
            log.warning("dashboard: database unavailable: %s", str(exc).strip())
            return dash.error(
                request,
                503,
                "The database cannot be reached right now; this page will work again once it "
                "is back (check PostgreSQL and GOOD_JOB_DATABASE_URL).",
            )

    return endpoint


class _Guard:
    """ASGI middleware: auth hook, then CSRF and read-only checks on POST, then headers."""

    def __init__(self, app: Any, dash: Dashboard) -> None:
        self.app = app
        self.dash = dash

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        if request.method not in ("GET", "HEAD"):
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
                await Response("Form too large.\n", status_code=413)(scope, receive, send)
                return
            # The guard reads the form for its token; the endpoint reads it again from a replay.
            body = await _read_body(receive)
            if body is None:
                await Response("Form too large.\n", status_code=413)(scope, receive, send)
                return
            original = receive
            receive = _replay(body, original)
            request = Request(scope, _replay(body, original))
        refusal = await self._refusal(request)

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                for name, value in SECURITY_HEADERS.items():
                    if name.encode() not in present:
                        headers.append((name.encode(), value.encode()))
                message = {**message, "headers": headers}
            await send(message)

        if refusal is not None:
            await refusal(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    async def _refusal(self, request: Request) -> Response | None:
        auth = self.dash.auth
        if auth is not None:
            if isinstance(auth, BasicAuth):
                if not auth.check(request.headers.get("authorization")):
                    return Response(
                        "Authentication required.\n", status_code=401, headers=auth.challenge()
                    )
            else:
                # A coroutine hook runs on the loop; a plain one (maybe blocking) in a thread.
                if inspect.iscoroutinefunction(auth):
                    allowed = await auth(request)
                else:
                    allowed = await run_in_threadpool(auth, request)
                if not allowed:
                    return Response("Forbidden.\n", status_code=403)
        if request.method in ("GET", "HEAD"):
            return None
        if self.dash.read_only:
            return self.dash.error(request, 403, "This dashboard is read-only.")
        if not origin_ok(request.headers.get("origin"), request.headers.get("host")):
            return self.dash.error(request, 403, "Cross-site request refused.")
        form = await request.form()
        submitted = form.get(CSRF_FIELD)  # a file upload under that name is no token
        token = submitted if isinstance(submitted, str) else None
        if not csrf_ok(self.dash.secret, request.cookies.get(CSRF_COOKIE), token):
            return self.dash.error(
                request,
                403,
                "The form's security token is missing or stale (the dashboard restarted?). "
                "Reload the page and try again.",
            )
        return None


async def _read_body(receive: Callable[[], Any]) -> bytes | None:
    """The request body, or None past MAX_FORM_BYTES (a chunked upload says no length)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, original: Callable[[], Any]) -> Callable[[], Any]:
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if sent:
            return await original()  # what comes after the body: the disconnect
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


# --- pages ------------------------------------------------------------------------------------


async def jobs_page(dash: Dashboard, request: Request) -> Response:
    params = request.query_params
    flt = admin.JobFilter.from_params(params)
    after = admin.Cursor.decode(params["after"]) if params.get("after") else None
    limit = _int(params.get("limit"), admin.DEFAULT_PAGE_SIZE)

    def load(conn: Any) -> tuple[admin.JobPage, dict[str, admin.Count]]:
        now = admin.utcnow()
        page = admin.list_jobs(conn, flt, after=after, limit=limit, now=now)
        return page, admin.state_counts(conn, flt, now=now)

    page, counts = await run_in_threadpool(dash.run, load)
    for row in page.rows:
        row["actions"] = admin.allowed_actions(row["state"], row["locked_by_id"] is not None)
    return dash.render(
        request,
        "jobs.html",
        {
            "page": "jobs",
            "filter": flt,
            "filter_params": flt.params(),
            "jobs": page.rows,
            "next_cursor": page.next_cursor.encode() if page.next_cursor else None,
            "paged": after is not None,
            "searched": page.searched,
            "window_full": page.window_full,
            "counts": counts,
            "states": admin.STATE_NAMES,
            "limit": limit,
            "notice": _notice(params),
            "bulk_actions": _bulk_actions(flt.state),
        },
    )


def _bulk_actions(state: str | None) -> list[str]:
    if state is None:
        return list(admin.ACTIONS)
    return [a for a, states in admin.ACTION_STATES.items() if state in states]


def _notice(params: Mapping[str, str]) -> str | None:
    # Built from fixed words, never echoed from the query string.
    action = params.get("done")
    if action not in ACTION_WORDS and action not in ("enable", "disable", "run"):
        return None
    n = _int(params.get("n"), 0)
    if action in ACTION_WORDS:
        return f"{n} job{'s' if n != 1 else ''} {ACTION_WORDS[action][1]}."
    return {
        "enable": "Cron entry enabled.",
        "disable": "Cron entry disabled.",
        "run": "Cron entry enqueued.",
    }[action]


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default


async def job_page(dash: Dashboard, request: Request) -> Response:
    job_id = _job_id(request.path_params["job_id"])
    detail = await run_in_threadpool(dash.run, admin.find_job, job_id)
    if detail is None:
        return dash.error(request, 404, f"No job {job_id} (finished jobs may be cleaned up).")
    job = detail.job
    params = job.get("serialized_params") or {}
    # not a dict: an UnreadableJSON (goodjob_mp.db.jsonb) or a foreign writer's odd value
    arguments = params.get("arguments") if isinstance(params, dict) else params
    return dash.render(
        request,
        "job.html",
        {
            "page": "jobs",
            "job": job,
            "arguments": arguments,
            "params": params,
            "executions": detail.executions,
            "actions": admin.allowed_actions(job["state"], job["locked_by_id"] is not None),
            "notice": _notice(request.query_params),
        },
    )


def _job_id(text: str) -> uuid.UUID:
    return admin.parse_ids([text])[0]


async def job_action(dash: Dashboard, request: Request) -> Response:
    job_id = _job_id(request.path_params["job_id"])
    action = request.path_params["action"]
    if action not in admin.ACTIONS:
        return dash.error(request, 404, f"No action {action!r}.")
    changed = await run_in_threadpool(dash.run, admin.apply_action, action, [job_id])
    if action == "destroy" and changed:
        return dash.redirect(request, "/jobs", done=action, n=len(changed))
    return dash.redirect(request, f"/jobs/{job_id}", done=action, n=len(changed))


async def bulk_action(dash: Dashboard, request: Request) -> Response:
    form = await request.form()
    action = str(form.get("action") or "")
    if action not in admin.ACTIONS:
        return dash.error(request, 400, f"Choose an action: {', '.join(admin.ACTIONS)}.")
    flt = admin.JobFilter.from_params({k: form.get(f"filter_{k}") for k in _FILTER_FIELDS})
    if form.get("scope") == "all":
        n = await run_in_threadpool(dash.run, admin.apply_action_to_filter, action, flt)
    else:
        ids = admin.parse_ids([str(v) for v in form.getlist("job_id")])
        n = len(await run_in_threadpool(dash.run, admin.apply_action, action, ids))
    return dash.redirect(request, "/jobs", **flt.params(), done=action, n=n)


_FILTER_FIELDS = ("state", "queue", "job_class", "label", "priority", "cron_key", "search")


async def cron_page(dash: Dashboard, request: Request) -> Response:
    entries = dash.cron_entries()
    rows = await run_in_threadpool(dash.run, admin.cron_states, entries)
    return dash.render(
        request,
        "cron.html",
        {"page": "cron", "entries": rows, "notice": _notice(request.query_params)},
    )


async def cron_action(dash: Dashboard, request: Request) -> Response:
    from goodjob_mp import cron as cron_mod

    key = request.path_params["key"]
    action = request.path_params["action"]
    entries = dash.cron_entries()
    if key not in entries:
        return dash.error(request, 404, f"No cron entry {key!r} is configured here.")
    if action in ("enable", "disable"):
        await run_in_threadpool(dash.run, cron_mod.set_enabled, key, action == "enable")
    elif action == "run":
        await run_in_threadpool(dash.run, cron_mod.enqueue_run, entries[key], None)
    else:
        return dash.error(request, 404, f"No cron action {action!r}.")
    return dash.redirect(request, "/cron", done=action)


async def processes_page(dash: Dashboard, request: Request) -> Response:
    rows = await run_in_threadpool(dash.run, admin.list_processes)
    return dash.render(request, "processes.html", {"page": "processes", "processes": rows})


async def performance_page(dash: Dashboard, request: Request) -> Response:
    minutes = max(5, min(_int(request.query_params.get("minutes"), 60), 24 * 60))
    perf = await run_in_threadpool(dash.run, admin.performance, minutes=minutes)
    labels = [m.strftime("%H:%M") for m in perf.minutes]
    by_class: dict[str, list[int]] = {}
    by_queue: dict[str, list[int]] = {}
    for (job_class, queue_name), values in perf.series.items():
        for bucket, key in ((by_class, job_class), (by_queue, queue_name)):
            line = bucket.setdefault(key, [0] * len(values))
            for i, v in enumerate(values):
                line[i] += v
    bars = [
        (f"{row['job_class']} ({row['queue_name']})", row["p50"] or 0.0, row["p95"] or 0.0)
        for row in perf.durations[:20]
    ]
    return dash.render(
        request,
        "performance.html",
        {
            "page": "performance",
            "minutes": minutes,
            "class_chart": charts.line_chart(
                by_class, labels, title="Executions per minute by job class"
            ),
            "queue_chart": charts.line_chart(
                by_queue, labels, title="Executions per minute by queue"
            ),
            "duration_chart": charts.duration_bars(bars, title="Duration p50 / p95"),
            "durations": perf.durations,
            "format_seconds": charts.format_seconds,
            "total": sum(sum(v) for v in perf.series.values()),
        },
    )


# --- batches and pauses -------------------------------------------------------------------------
# Reads from goodjob_mp.db.batches (as `goodjob-supervisor batches`) and goodjob_mp.pauses_api
# (as `goodjob-supervisor pause / unpause / pauses`).

BATCH_PAGE_SIZE = 25


def _batch_cursor(text: str | None) -> tuple[dt.datetime, uuid.UUID] | None:
    """``before`` = "<created_at ISO>_<id>" of the last row shown; a bad one starts over."""
    if not text:
        return None
    stamp, _, ident = text.rpartition("_")
    try:
        return dt.datetime.fromisoformat(stamp), uuid.UUID(ident)
    except ValueError:
        raise admin.FilterError(f"{text!r} is not a batches page cursor") from None


async def batches_page(dash: Dashboard, request: Request) -> Response:
    from goodjob_mp.db import batches

    before = _batch_cursor(request.query_params.get("before"))
    rows = await run_in_threadpool(dash.run, batches.list_batches, BATCH_PAGE_SIZE + 1, before)
    more = len(rows) > BATCH_PAGE_SIZE
    rows = rows[:BATCH_PAGE_SIZE]
    last = rows[-1] if rows and more else None
    return dash.render(
        request,
        "batches.html",
        {
            "page": "batches",
            "batches": rows,
            "next_cursor": f"{last.created_at.isoformat()}_{last.id}" if last else None,
        },
    )


async def batch_page(dash: Dashboard, request: Request) -> Response:
    from goodjob_mp.db import batches
    from goodjob_mp.features.batches import load_properties

    try:
        batch_id = uuid.UUID(request.path_params["batch_id"])
    except ValueError:
        return dash.error(request, 404, "That is not a batch id.")

    def load(conn: Any) -> tuple[Any, list[Any]]:
        row = batches.find(conn, batch_id)
        return row, (batches.batch_jobs(conn, batch_id, admin.utcnow()) if row else [])

    row, jobs = await run_in_threadpool(dash.run, load)
    if row is None:
        return dash.error(
            request, 404, f"No batch {batch_id} (finished batches may be cleaned up)."
        )
    try:
        properties = load_properties(row.serialized_properties)
    except ValueError:  # a Ruby-only serializer: show what is stored
        properties = row.serialized_properties
    return dash.render(
        request,
        "batch.html",
        {
            "page": "batches",
            "batch": row,
            "state": batches.batch_state(row.enqueued_at, row.discarded_at, row.finished_at),
            "properties": properties,
            "jobs": jobs,
        },
    )


PAUSE_KINDS = (("queue", "Queue"), ("job_class", "Job class"), ("label", "Label"))
_PAUSE_LISTS = {"queue": "queues", "job_class": "job_classes", "label": "labels"}


async def pauses_page(dash: Dashboard, request: Request) -> Response:
    from goodjob_mp import pauses_api

    current = await run_in_threadpool(dash.run, lambda conn: pauses_api.pauses(connection=conn))
    words = dict(PAUSE_KINDS)
    paused = [
        (kind, words[kind], name)
        for kind, attr in _PAUSE_LISTS.items()
        for name in getattr(current, attr)
    ]
    done = request.query_params.get("done")
    notice = {"pause": "Paused.", "unpause": "Unpaused.", "same": "Nothing changed."}.get(
        done or ""
    )
    return dash.render(
        request,
        "pauses.html",
        {"page": "pauses", "paused": paused, "kinds": PAUSE_KINDS, "notice": notice},
    )


async def pause_action(dash: Dashboard, request: Request) -> Response:
    from goodjob_mp import pauses_api

    action = request.path_params["action"]
    if action not in ("pause", "unpause"):
        return dash.error(request, 404, f"No pause action {action!r}.")
    form = await request.form()
    kind = str(form.get("kind") or "")
    name = str(form.get("name") or "").strip()
    if kind not in _PAUSE_LISTS or not name:
        return dash.error(request, 400, "Choose a queue, job class or label and give its name.")
    call = pauses_api.pause if action == "pause" else pauses_api.unpause

    def change(conn: Any) -> bool:
        return call(**{kind: name}, connection=conn)

    try:
        changed = await run_in_threadpool(dash.run, change)
    except pauses_api.PauseError as exc:
        return dash.error(request, 400, str(exc))
    return dash.redirect(request, "/pauses", done=action if changed else "same")


__all__ = ["BasicAuth", "Dashboard", "Markup", "create_app"]
