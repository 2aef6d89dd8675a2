"""Job definitions: the ``Job`` class, the ``@job`` decorator, ``set()``, the job registry and the
``retry_on`` / ``discard_on`` policies.

Owns the mapping from a ``job_class`` string (as stored in ``good_jobs``) to Python code. By
default a job answers to its import path (``myapp.jobs.SendWelcome``); ``job_class_name`` makes it
answer to another name, e.g. the class name a Rails app enqueues. Never touches the database
itself: enqueueing is delegated to ``goodjob_mp.enqueue``.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib
import inspect
import logging
import math
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, ParamSpec, TypeVar, overload

from goodjob_mp.backoff import retry_wait_seconds

if TYPE_CHECKING:
    from goodjob_mp.enqueue import EnqueuedJob as EnqueuedJobHandle

log = logging.getLogger("goodjob_mp.jobs")

INFINITE = math.inf
DEFAULT_QUEUE = "default"
DEFAULT_PRIORITY = 0


class UnknownJobClassError(LookupError):
    """A stored ``job_class`` names no job known to this process."""


class JobDefinitionError(TypeError):
    """A job class whose ``retry_on`` / ``discard_on`` (or other definition) cannot work;
    raised when the class is defined, never later at perform time."""


def _exception_types(exceptions: Any, what: str) -> tuple[type[BaseException], ...]:
    types = exceptions if isinstance(exceptions, tuple) else (exceptions,)
    if not types or not all(isinstance(t, type) and issubclass(t, BaseException) for t in types):
        raise JobDefinitionError(
            f"{what}: {exceptions!r} is not an exception class; pass a class such as "
            "TimeoutError or a tuple of them"
        )
    return types


@dataclass(frozen=True)
class RetryOn:
    """Retry when one of ``exceptions`` is raised, up to ``attempts`` times for this rule.

    ``wait``: seconds (or a ``timedelta``), ``"polynomially_longer"``, ``"exponentially_longer"``
    or a callable taking this rule's execution count (Active Job's semantics). ``attempts`` may be
    ``goodjob_mp.INFINITE``. ``queue`` and ``priority``, when given, are where the retry is
    enqueued (as Active Job's ``retry_on queue:, priority:``). ``executions_key`` names the rule's
    count in ``exception_executions`` (default ``"[Name, ...]"`` from the classes' names); give
    the Rails rule's spelling (``"[Net::ReadTimeout]"``) when a Rails app retries the same jobs.
    Every value is checked here, so a bad rule fails when the job class is defined.
    """

    exceptions: type[BaseException] | tuple[type[BaseException], ...]
    wait: float | dt.timedelta | str | Callable[[int], float] = 3
    attempts: float = 5
    jitter: float = 0.15
    queue: str | None = None
    priority: int | None = None
    executions_key: str | None = None

    def __post_init__(self) -> None:
        _exception_types(self.exceptions, "RetryOn")
        if self.executions_key is not None and (
            not isinstance(self.executions_key, str) or not self.executions_key.strip()
        ):
            raise JobDefinitionError(
                f"RetryOn(executions_key={self.executions_key!r}) is invalid; use the key "
                "Active Job stores the rule's count under, such as '[Net::ReadTimeout]', or None"
            )
        if not callable(self.wait) or isinstance(self.wait, type):
            try:
                retry_wait_seconds(self.wait, 1, 0.0)
            except ValueError as exc:
                raise JobDefinitionError(f"RetryOn(wait={self.wait!r}) is invalid: {exc}") from None
        if not _is_number(self.jitter) or not math.isfinite(self.jitter) or self.jitter < 0:
            raise JobDefinitionError(
                f"RetryOn(jitter={self.jitter!r}) is invalid; use a fraction such as 0.15, or 0"
            )
        attempts = self.attempts
        if not _is_number(attempts) or not (
            attempts == INFINITE or (float(attempts).is_integer() and attempts >= 1)
        ):
            raise JobDefinitionError(
                f"RetryOn(attempts={attempts!r}) is invalid; use a whole number >= 1 or "
                "goodjob_mp.INFINITE"
            )
        if self.queue is not None and (not isinstance(self.queue, str) or not self.queue.strip()):
            raise JobDefinitionError(
                f"RetryOn(queue={self.queue!r}) is invalid; use a queue name or None"
            )
        if self.priority is not None and not _is_whole(self.priority):
            raise JobDefinitionError(
                f"RetryOn(priority={self.priority!r}) is invalid; use a whole number or None"
            )

    @property
    def key(self) -> str:
        """Active Job's ``exception_executions`` key (``exceptions.to_s``), e.g.
        ``"[TransientError]"`` or ``"[Net::OpenTimeout, Timeout::Error]"``."""
        if self.executions_key is not None:
            return self.executions_key
        names = self.exceptions if isinstance(self.exceptions, tuple) else (self.exceptions,)
        return "[" + ", ".join(e.__name__ for e in names) + "]"


@dataclass(frozen=True)
class DiscardOn:
    """Discard the job (no retry) when one of ``exceptions`` is raised."""

    exceptions: type[BaseException] | tuple[type[BaseException], ...]

    def __post_init__(self) -> None:
        _exception_types(self.exceptions, "DiscardOn")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _as_retry_rules(rules: Iterable[Any], owner: str) -> tuple[RetryOn, ...]:
    if isinstance(rules, (RetryOn, type)):
        rules = [rules]
    out = []
    for rule in rules:
        try:
            out.append(rule if isinstance(rule, RetryOn) else RetryOn(rule))
        except JobDefinitionError as exc:
            raise JobDefinitionError(f"{owner}.retry_on: {exc}") from None
    return tuple(out)


def _as_discard_types(rules: Iterable[Any], owner: str) -> tuple[type[BaseException], ...]:
    if isinstance(rules, (DiscardOn, type)):
        rules = [rules]
    out: list[type[BaseException]] = []
    for rule in rules:
        exc = rule.exceptions if isinstance(rule, DiscardOn) else rule
        try:
            out.extend(_exception_types(exc, "DiscardOn"))
        except JobDefinitionError as error:
            raise JobDefinitionError(f"{owner}.discard_on: {error}") from None
    return tuple(out)


# --- registry ---------------------------------------------------------------------------------

_registry: dict[str, type[Job]] = {}
_registry_lock = threading.Lock()


def register(name: str, job_cls: type[Job]) -> None:
    with _registry_lock:
        previous = _registry.get(name)
        if previous is not None and previous is not job_cls:
            log.debug("job class name %r now maps to %r (was %r)", name, job_cls, previous)
        _registry[name] = job_cls


def _import_name(module: str) -> str:
    """The name other processes import a module by: ``python -m myapp.jobs`` runs it as
    ``__main__``, which a worker cannot import, so such jobs answer to ``myapp.jobs``."""
    if module == "__main__":
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        if spec is not None and spec.name:
            return spec.name
    return module


def lookup(name: str, *, import_under: Iterable[str] | None = None) -> type[Job]:
    """The job class for a ``job_class`` name; imports its module once if it is a dotted path.

    ``import_under``: the packages whose modules may be imported for it. A name read from a
    database row is data, not code, so the worker passes its ``--app`` packages and
    ``job_packages`` here: a row naming ``this.x`` must not run ``this``'s import side effect.
    None (configuration the operator wrote, e.g. cron) imports any module.
    """
    job_cls = _registry.get(name)
    if job_cls is not None:
        return job_cls
    module, _, _ = name.rpartition(".")
    if module and (import_under is None or may_import(module, import_under)):
        try:
            importlib.import_module(module)
        except ImportError:
            pass
        job_cls = _registry.get(name)
        if job_cls is not None:
            return job_cls
    raise UnknownJobClassError(
        f"no job class {name!r} is registered in this process; import the module that defines it "
        "(goodjob-supervisor --app=MODULE, or list its package in job_packages) or set "
        "job_class_name on the Job to answer to this name"
    )


def may_import(module: str, packages: Iterable[str]) -> bool:
    """Whether ``module`` is one of ``packages`` or inside one (``a.b`` is inside ``a``)."""
    return any(module == p or module.startswith(p + ".") for p in packages if p)


def importable_packages(app: str | None, job_packages: Iterable[str] = ()) -> tuple[str, ...]:
    """The packages a stored ``job_class`` may import: the top-level package of each ``--app``
    module (``myapp.jobs`` allows ``myapp.*``) and the ``job_packages`` allow-list."""
    apps = [a.strip() for a in (app or "").split(",") if a.strip()]
    return (*dict.fromkeys(a.split(".")[0] for a in apps), *job_packages)


def registered_names() -> list[str]:
    return sorted(_registry)


# --- options ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnqueueOptions:
    """What ``set()`` says about an enqueue. ``wait`` is kept as seconds and turned into a run
    time at ``perform_later`` (as Active Job does), so a configured job reused later still
    waits the full time; ``scheduled_at`` (from ``wait_until=``) is a fixed moment."""

    queue: str | None = None
    priority: int | None = None
    scheduled_at: dt.datetime | None = None  # aware or naive-UTC
    labels: tuple[str, ...] | None = None
    wait: float | None = None

    def run_at(self, now: dt.datetime) -> dt.datetime | None:
        """The requested run time for an enqueue at ``now`` (None: as soon as possible)."""
        if self.wait is not None:
            return now + dt.timedelta(seconds=self.wait)
        return self.scheduled_at


_NO_OPTIONS = EnqueueOptions()


def clean_labels(labels: Iterable[str] | None) -> tuple[str, ...] | None:
    """GoodJob strips labels, drops blank ones and duplicates, keeping first-seen order."""
    if labels is None:
        return None
    if isinstance(labels, str):
        labels = [labels]
    seen: dict[str, None] = {}
    for label in labels:
        if not isinstance(label, str):
            raise TypeError(f"labels must be strings, got {label!r} ({type(label).__name__})")
        stripped = label.strip()
        if stripped:
            seen.setdefault(stripped, None)
    return tuple(seen)


def _make_options(
    queue: str | None = None,
    priority: int | None = None,
    wait: float | dt.timedelta | None = None,
    wait_until: dt.datetime | None = None,
    labels: Iterable[str] | None = None,
) -> EnqueueOptions:
    if wait is not None and wait_until is not None:
        raise ValueError("set() takes wait= or wait_until=, not both")
    seconds = None
    if wait is not None:
        seconds = _wait_seconds(wait)
    elif wait_until is not None and not isinstance(wait_until, dt.datetime):
        raise TypeError(f"wait_until must be a datetime, got {type(wait_until).__name__}")
    if priority is not None and not _is_whole(priority):
        raise TypeError(f"priority must be an int, got {priority!r}")
    if queue is not None and (not isinstance(queue, str) or not queue.strip()):
        raise ValueError(f"queue must be a non-empty string, got {queue!r}")
    return EnqueueOptions(queue, priority, wait_until, clean_labels(labels), seconds)


def _wait_seconds(wait: Any) -> float:
    if isinstance(wait, dt.timedelta):
        seconds = wait.total_seconds()
    elif _is_number(wait):
        seconds = float(wait)
    else:
        raise TypeError(
            f"wait must be seconds or a timedelta, got {wait!r} ({type(wait).__name__})"
        )
    if not math.isfinite(seconds):
        raise ValueError(
            f"wait={wait!r} is not a finite number of seconds; use seconds (e.g. wait=300), a "
            "timedelta, or wait_until= a datetime"
        )
    try:
        dt.timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(
            f"wait={wait!r} is beyond the largest datetime; use wait_until= a datetime"
        ) from None
    return seconds


def _merge(base: EnqueueOptions, extra: EnqueueOptions) -> EnqueueOptions:
    # A later wait= or wait_until= replaces the earlier one, whichever it was.
    timed = extra.wait is not None or extra.scheduled_at is not None
    return EnqueueOptions(
        extra.queue if extra.queue is not None else base.queue,
        extra.priority if extra.priority is not None else base.priority,
        extra.scheduled_at if timed else base.scheduled_at,
        extra.labels if extra.labels is not None else base.labels,
        extra.wait if timed else base.wait,
    )


# goodjob_mp.enqueue imports this module, so its enqueue() is looked up on first use (once, not
# with an import statement on every perform_later).
_enqueue: Callable[..., Any] | None = None


def _load_enqueue() -> Callable[..., Any]:
    global _enqueue
    from goodjob_mp.enqueue import enqueue

    _enqueue = enqueue
    return enqueue


class ConfiguredJob:
    """``Job.set(...)``: the same job with enqueue options; chainable."""

    def __init__(self, job_cls: type[Job], options: EnqueueOptions) -> None:
        self.job_cls = job_cls
        self.options = options

    def set(self, **options: Any) -> ConfiguredJob:
        return ConfiguredJob(self.job_cls, _merge(self.options, _make_options(**options)))

    def perform_later(self, *args: Any, **kwargs: Any) -> Any:
        return (_enqueue or _load_enqueue())(self.job_cls, args, kwargs, self.options)

    def perform_now(self, *args: Any, **kwargs: Any) -> Any:
        return self.job_cls.perform_now(*args, **kwargs)


# --- rescue_from ------------------------------------------------------------------------------

_RESCUES_ATTR = "_goodjob_rescue_from"


def rescue_from(
    *exceptions: type[BaseException],
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a ``Job`` method as the handler of ``exceptions`` (Active Job's ``rescue_from``)::

        @gj.rescue_from(CardDeclined)
        def declined(self, error: CardDeclined) -> None: ...

    A handled error finishes the job, recorded as handled (``error_event`` 2). ``retry_on`` and
    ``discard_on`` are consulted first; among handlers, a subclass's come before its base's and,
    as in Rails, a later one in a class body before an earlier one.
    """
    types = _exception_types(exceptions, "rescue_from")

    def mark(method: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(method):
            raise JobDefinitionError(f"rescue_from decorates a method, got {method!r}")
        setattr(method, _RESCUES_ATTR, (*getattr(method, _RESCUES_ATTR, ()), *types))
        return method

    return mark


def _rescue_handlers(cls: type) -> tuple[tuple[tuple[type[BaseException], ...], str], ...]:
    handlers: list[tuple[tuple[type[BaseException], ...], str]] = []
    seen: set[str] = set()
    for klass in cls.__mro__:
        for name, member in reversed(list(vars(klass).items())):
            types = getattr(member, _RESCUES_ATTR, None)
            if types and name not in seen:
                seen.add(name)
                handlers.append((types, name))
    return tuple(handlers)


def _check_timeout(value: Any, owner: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, dt.timedelta):
        value = value.total_seconds()
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise JobDefinitionError(
            f"{owner}.timeout = {value!r} is invalid; use seconds > 0 (or a timedelta), or None "
            "for no limit"
        )
    return float(value)


def _check_concurrency(value: Any, owner: str) -> Any:
    if value is None:
        return None
    from goodjob_mp.features import concurrency_io
    from goodjob_mp.features.concurrency import Concurrency

    if not isinstance(value, Concurrency):
        raise JobDefinitionError(
            f"{owner}.concurrency = {value!r} is invalid; use gj.Concurrency(perform_limit=..., "
            "key=...) or None"
        )
    concurrency_io.install()
    return value


# --- the Job class ----------------------------------------------------------------------------


class Job:
    """Subclass and define ``perform``. Class attributes are the defaults for every enqueue."""

    queue_name: ClassVar[str] = DEFAULT_QUEUE
    # None: unset, as in Active Job (serialized_params["priority"] is null, the column is 0).
    priority: ClassVar[int | None] = None
    labels: ClassVar[Sequence[str]] = ()
    job_class_name: ClassVar[str | None] = None
    retry_on: ClassVar[Sequence[Any]] = ()
    discard_on: ClassVar[Sequence[Any]] = ()
    # Seconds (or a timedelta) after which JobTimeoutError is raised in the job; None: no limit.
    timeout: ClassVar[float | dt.timedelta | None] = None
    # gj.Concurrency(...): limits and throttles per concurrency key (docs/concurrency.md).
    concurrency: ClassVar[Any] = None

    # Filled in for the instance that performs a job.
    job_id: str | None = None
    executions: int = 0
    provider_job_id: str | None = None
    arguments: tuple[tuple[Any, ...], dict[str, Any]] = ((), {})

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._retry_rules = _as_retry_rules(cls.retry_on, cls.__qualname__)
        cls._discard_types = _as_discard_types(cls.discard_on, cls.__qualname__)
        cls._rescues = _rescue_handlers(cls)
        cls._timeout_seconds = _check_timeout(cls.timeout, cls.__qualname__)
        cls._concurrency = _check_concurrency(cls.concurrency, cls.__qualname__)
        if "job_class_name" not in cls.__dict__ or cls.__dict__["job_class_name"] is None:
            cls.job_class_name = f"{_import_name(cls.__module__)}.{cls.__qualname__}"
        register(cls.job_class_name or cls.__qualname__, cls)

    _retry_rules: ClassVar[tuple[RetryOn, ...]] = ()
    _discard_types: ClassVar[tuple[type[BaseException], ...]] = ()
    _rescues: ClassVar[tuple[tuple[tuple[type[BaseException], ...], str], ...]] = ()
    _timeout_seconds: ClassVar[float | None] = None
    _concurrency: ClassVar[Any] = None  # the checked Concurrency, or None (most jobs)

    def perform(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.perform is not defined")

    @property
    def batch(self) -> Any:
        """While performing: the ``Batch`` this job belongs to, or None (GoodJob's ``batch``)."""
        from goodjob_mp.features.batches import batch_of_job

        return batch_of_job(self.provider_job_id)

    # --- perform callbacks (Active Job's before/around/after_perform) --------------------------
    # Override them; call super() to keep a base class's. ``self.arguments`` holds the call.

    def before_perform(self) -> None:
        """Runs before ``perform``; an exception here fails the attempt, unperformed."""

    def around_perform(self, perform: Callable[[], Any]) -> Any:
        """Wraps ``perform``: call ``perform()`` exactly once (not calling it skips the job)."""
        return perform()

    def after_perform(self) -> None:
        """Runs after ``perform`` returned (not after an exception)."""

    def run_callbacks_and_perform(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        """``before_perform``, ``around_perform(perform)``, ``after_perform``, in that order."""
        self.arguments = (tuple(args), dict(kwargs))
        self.before_perform()
        result = self.around_perform(lambda: self.perform(*args, **kwargs))
        self.after_perform()
        return result

    async def run_callbacks_and_perform_async(
        self, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> Any:
        """The same callbacks for an ``async def perform``; ``around_perform`` may be sync
        (return ``perform()``) or ``async def`` (``return await perform()``)."""
        self.arguments = (tuple(args), dict(kwargs))
        self.before_perform()
        result = self.around_perform(lambda: self.perform(*args, **kwargs))
        if inspect.isawaitable(result):
            result = await result
        self.after_perform()
        return result

    @classmethod
    def is_async(cls) -> bool:
        """True for ``async def perform``: the worker runs it on its pool's event loop."""
        return inspect.iscoroutinefunction(cls.perform)

    def rescue_with_handler(self, error: BaseException) -> bool:
        """Run the ``rescue_from`` handler for ``error``; False when there is none."""
        for types, name in self._rescues:
            if isinstance(error, types):
                getattr(self, name)(error)
                return True
        return False

    @classmethod
    def default_options(cls) -> EnqueueOptions:
        # Cached per class (enqueue hot path); checked against the attributes so a changed one
        # shows (labels against a copy, so a list changed in place shows too).
        cached = cls.__dict__.get("_default_options_cache")
        if (
            cached is not None
            and cached[0] == cls.queue_name
            and cached[1] == cls.priority
            and cached[2] == cls.labels
        ):
            return cached[3]  # type: ignore[no-any-return]
        labels = cls.labels
        options = EnqueueOptions(cls.queue_name, cls.priority, None, clean_labels(labels) or None)
        copy = labels[:] if isinstance(labels, (list, tuple)) else labels
        cls._default_options_cache = (cls.queue_name, cls.priority, copy, options)  # type: ignore[attr-defined]
        return options

    @classmethod
    def set(cls, **options: Any) -> ConfiguredJob:
        """``queue=``, ``priority=``, ``wait=`` (seconds or timedelta), ``wait_until=``,
        ``labels=``."""
        return ConfiguredJob(cls, _make_options(**options))

    @classmethod
    def perform_later(cls, *args: Any, **kwargs: Any) -> Any:
        """Enqueue; returns an ``EnqueuedJob`` handle with ``.id``."""
        return (_enqueue or _load_enqueue())(cls, args, kwargs, _NO_OPTIONS)

    @classmethod
    def perform_now(cls, *args: Any, **kwargs: Any) -> Any:
        """Run here and now, without the queue, with callbacks, ``timeout`` and ``rescue_from``
        handlers; other exceptions propagate (no retry_on/discard_on: there is no queue)."""
        from goodjob_mp.timeouts import time_limit

        instance = cls()
        instance.executions = 1
        if cls.is_async():
            from goodjob_mp.async_jobs import perform_now_async, run_blocking

            return run_blocking(perform_now_async(instance, args, kwargs))
        try:
            with time_limit(cls._timeout_seconds):
                return instance.run_callbacks_and_perform(args, kwargs)
        except Exception as error:
            if instance.rescue_with_handler(error):
                return None
            raise


# --- the decorator ----------------------------------------------------------------------------

P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class _DecoratorOptions:
    queue: str = DEFAULT_QUEUE
    priority: int | None = None
    labels: Sequence[str] = ()
    name: str | None = None
    retry_on: Sequence[Any] = field(default_factory=tuple)
    discard_on: Sequence[Any] = field(default_factory=tuple)
    timeout: float | dt.timedelta | None = None
    concurrency: Any = None


class TypedConfiguredJob(Generic[P, R]):
    """``fn.set(...)`` of a decorated function: ``perform_later`` checks the function's
    parameters in a type checker."""

    def __init__(self, configured: ConfiguredJob) -> None:
        self._configured = configured

    def set(self, **options: Any) -> TypedConfiguredJob[P, R]:
        return TypedConfiguredJob(self._configured.set(**options))

    def perform_later(self, *args: P.args, **kwargs: P.kwargs) -> EnqueuedJobHandle:
        return self._configured.perform_later(*args, **kwargs)  # type: ignore[no-any-return]

    def perform_now(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._configured.perform_now(*args, **kwargs)  # type: ignore[no-any-return]


class JobFunction(Generic[P, R]):
    """What ``@job`` returns: still callable as the plain function, plus the Job API, typed
    from the function's signature (``ParamSpec``) so that type checkers check the arguments of
    ``perform_later`` and ``perform_now``."""

    def __init__(self, fn: Callable[P, R], job_cls: type[Job]) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.job_class = job_cls

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def set(self, **options: Any) -> TypedConfiguredJob[P, R]:
        return TypedConfiguredJob(self.job_class.set(**options))

    def perform_later(self, *args: P.args, **kwargs: P.kwargs) -> EnqueuedJobHandle:
        return self.job_class.perform_later(*args, **kwargs)  # type: ignore[no-any-return]

    def perform_now(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.job_class.perform_now(*args, **kwargs)  # type: ignore[no-any-return]

    @property
    def job_class_name(self) -> str:
        return self.job_class.job_class_name  # type: ignore[return-value]


def _perform(func: Callable[..., Any]) -> Callable[..., Any]:
    def perform(self: Job, *args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    return perform


def _async_perform(func: Callable[..., Any]) -> Callable[..., Any]:
    async def perform(self: Job, *args: Any, **kwargs: Any) -> Any:
        return await func(*args, **kwargs)

    return perform


@overload
def job(fn: Callable[P, R], /) -> JobFunction[P, R]: ...


@overload
def job(
    fn: None = None,
    *,
    queue: str = DEFAULT_QUEUE,
    priority: int | None = None,
    labels: Sequence[str] = (),
    name: str | None = None,
    retry_on: Sequence[Any] = (),
    discard_on: Sequence[Any] = (),
    timeout: float | dt.timedelta | None = None,
    concurrency: Any = None,
) -> Callable[[Callable[P, R]], JobFunction[P, R]]: ...


def job(
    fn: Callable[P, R] | None = None,
    *,
    queue: str = DEFAULT_QUEUE,
    priority: int | None = None,
    labels: Sequence[str] = (),
    name: str | None = None,
    retry_on: Sequence[Any] = (),
    discard_on: Sequence[Any] = (),
    timeout: float | dt.timedelta | None = None,
    concurrency: Any = None,
) -> JobFunction[P, R] | Callable[[Callable[P, R]], JobFunction[P, R]]:
    """Turn a function into a job: ``@job`` or ``@job(queue="mail", priority=-1, ...)``."""
    opts = _DecoratorOptions(
        queue, priority, labels, name, retry_on, discard_on, timeout, concurrency
    )

    def wrap(func: Callable[P, R]) -> JobFunction[P, R]:
        perform = _async_perform(func) if inspect.iscoroutinefunction(func) else _perform(func)

        job_cls = type(
            func.__name__,
            (Job,),
            {
                "__module__": func.__module__,
                "__qualname__": func.__qualname__,
                "__doc__": func.__doc__,
                "perform": perform,
                "queue_name": opts.queue,
                "priority": opts.priority,
                "labels": tuple(opts.labels),
                "job_class_name": opts.name,
                "retry_on": tuple(opts.retry_on),
                "discard_on": tuple(opts.discard_on),
                "timeout": opts.timeout,
                "concurrency": opts.concurrency,
            },
        )
        return JobFunction(func, job_cls)

    return wrap(fn) if fn is not None else wrap
