"""Job arguments in Active Job's ``serialized_params["arguments"]`` shape, both directions.

Owns the mapping between a Python call ``(args, kwargs)`` and the JSON list that Active Job stores,
so that a Rails service on the real GoodJob and a Python service on goodjob_mp can read each
other's jobs. Pure: never does I/O, never imports jobs or the registry, and never changes a value
silently. Whatever JSON cannot carry faithfully is refused at enqueue time, with the argument's
place and type in the message.

What is written (and read back):

- ``str``, ``int``, finite ``float``, ``bool``, ``None`` and ``list`` as themselves.
- ``dict`` (str keys only) as Active Job writes a Ruby hash with string keys: the values, plus
  ``"_aj_symbol_keys": []``. Keys Active Job reserves (``_aj_globalid`` and friends) are refused.
- keyword arguments as one trailing hash marked ``"_aj_ruby2_keywords": [names in order]``, which
  is how Active Job writes Ruby keyword arguments; reading turns only such a trailing hash back
  into ``**kwargs``. Every other hash is a positional dict.
- aware ``datetime``: with a ``zoneinfo.ZoneInfo`` as ``TimeWithZoneSerializer`` plus Rails
  7.1.3's ``"time_zone"`` (IANA name), so both sides keep the zone; with any other tzinfo (e.g. a
  fixed offset) as ``TimeSerializer``, which keeps the offset on the Ruby side too (a
  ``TimeWithZone`` would be moved into the Rails app's zone). Values are ISO 8601 with 9 fraction
  digits, like Rails. Reading gives microseconds: Ruby's nanoseconds are truncated.
- naive ``datetime``: refused by default, because it names no moment: Ruby (and any host in
  another zone) would read another time. ``naive_datetimes="utc"`` writes it as UTC;
  ``"keep"`` writes goodjob_mp's own ``GoodJobMP::NaiveDateTimeSerializer`` (Python only).
- ``date`` as ``DateSerializer``; ``Decimal`` as ``BigDecimalSerializer`` (the Rails 7.1+ form),
  or with ``decimal_format="string"`` as a bare string like ``"12.34"``, as Active Job 6.1/7.0
  write one (they refuse the tag); such a string reads back as ``str``, because nothing tells it
  apart from a string. ``timedelta`` as ``DurationSerializer`` in days, hours, minutes
  and seconds (never weeks, months or years: those are calendar lengths in Ruby).
- ``UUID``, ``tuple``, ``set``/``frozenset`` under goodjob_mp's own tags (``GoodJobMP::...``),
  which only goodjob_mp reads; sets are written sorted so equal sets give equal JSON.
- ``active_job_compatible=True`` refuses everything under a ``GoodJobMP::`` tag.
- Text (values and keys) with a NUL character or a lone surrogate is refused: jsonb cannot
  store it.
- Containers (lists, dicts, tuples, sets) nested more than ``MAX_NESTING`` (98) deep are
  refused: with the two levels of Active Job's envelope that is the 100 levels that Ruby's
  ``JSON.parse`` (how Rails reads jsonb) accepts, and well inside what goodjob_mp's own reader
  (recursive, like Python's ``json``) can decode in a worker thread.
- Floats of 1e16 and more are written in positional form (``10000000000000000.0``): jsonb keeps
  a number's text only that way, and would turn ``1e+16`` (even ``1.0e+16``) into an integer.
- ``IntEnum``/``StrEnum`` (any int or str mixin enum) as their value; they read back as the plain
  value. ``GlobalID`` (a Rails record reference) as ``{"_aj_globalid": uri}``.
- Read only: Ruby symbols and modules (classes) become their name as ``str``; hashes with
  indifferent access become ``dict``. Any other ``_aj_serialized`` class is an error naming it.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, is_dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import unquote
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "DEFAULT_POLICY",
    "DeserializationError",
    "GlobalID",
    "SerializationError",
    "WritePolicy",
    "deserialize_arguments",
    "dumps",
    "serialize_arguments",
]

NAIVE_DATETIME_MODES = ("refuse", "utc", "keep")
# Containers inside containers that one argument may hold (see the module docstring).
MAX_NESTING = 98
DECIMAL_FORMATS = ("big_decimal", "string")


@dataclass(frozen=True)
class WritePolicy:
    """The choices a deployment makes about writing arguments (settings of the same names).

    - ``naive_datetimes``: ``"refuse"`` (default) a naive ``datetime``; ``"utc"`` reads it as
      UTC; ``"keep"`` writes goodjob_mp's own ``GoodJobMP::NaiveDateTimeSerializer``.
    - ``decimal_format``: ``"big_decimal"`` (Rails 7.1+'s ``BigDecimalSerializer``) or
      ``"string"`` (a bare string, as Active Job 6.1/7.0 write and read a BigDecimal).
    - ``active_job_compatible``: refuse every value only goodjob_mp can read (UUID, tuple, set,
      frozenset, kept naive datetimes), so every job can be performed by a Rails app.
    """

    naive_datetimes: str = "refuse"
    decimal_format: str = "big_decimal"
    active_job_compatible: bool = False


DEFAULT_POLICY = WritePolicy()

# Active Job's marker keys (ActiveJob::Arguments). Ruby also reserves their symbol forms, which are
# the same strings once they reach Python.
_GLOBALID_KEY = "_aj_globalid"
_SYMBOL_KEYS_KEY = "_aj_symbol_keys"
_RUBY2_KEYWORDS_KEY = "_aj_ruby2_keywords"
_INDIFFERENT_KEY = "_aj_hash_with_indifferent_access"
_SERIALIZER_KEY = "_aj_serialized"
_RESERVED_KEYS = frozenset(
    {_GLOBALID_KEY, _SYMBOL_KEYS_KEY, _RUBY2_KEYWORDS_KEY, _INDIFFERENT_KEY, _SERIALIZER_KEY}
)

_AJ = "ActiveJob::Serializers::"
_SYMBOL = _AJ + "SymbolSerializer"
_MODULE = _AJ + "ModuleSerializer"
_TIME = _AJ + "TimeSerializer"
_TIME_WITH_ZONE = _AJ + "TimeWithZoneSerializer"
_DATE_TIME = _AJ + "DateTimeSerializer"
_DATE = _AJ + "DateSerializer"
_DURATION = _AJ + "DurationSerializer"
_BIG_DECIMAL = _AJ + "BigDecimalSerializer"
_NAIVE_DATE_TIME = "GoodJobMP::NaiveDateTimeSerializer"
_UUID = "GoodJobMP::UUIDSerializer"
_TUPLE = "GoodJobMP::TupleSerializer"
_SET = "GoodJobMP::SetSerializer"

# ActiveSupport::Duration::PARTS_IN_SECONDS; years and months are its averages.
_DURATION_PART_SECONDS = {
    "years": 31556952,
    "months": 2629746,
    "weeks": 604800,
    "days": 86400,
    "hours": 3600,
    "minutes": 60,
    "seconds": 1,
}
_DURATION_PARTS_WRITTEN = (("days", 86400), ("hours", 3600), ("minutes", 60))

_SUPPORTED = (
    "supported are str, int, finite float, bool, None, list, dict with str keys, tuple, set, "
    "frozenset, datetime, date, timedelta, Decimal, UUID, int/str enums and GlobalID"
)

# Checked with `type(x) in _JSON_SCALARS` on the hot path: exact types only, so subclasses (enums)
# take the slow path where they are converted. str is not among them: its text is checked.
_JSON_SCALARS = (int, bool, type(None))
_JSON_LEAVES = (str, int, float, bool, type(None))


class SerializationError(TypeError):
    """An argument that Active Job's JSON cannot carry faithfully; refused at enqueue time.

    ``path`` says where it sits (``args[0]['k'][3]``, ``kwargs['when']``) and ``type_name`` what
    it is.
    """

    def __init__(self, message: str, *, path: str = "", type_name: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.type_name = type_name


class DeserializationError(ValueError):
    """A stored ``arguments`` payload that cannot be read; ``path`` says which part."""

    def __init__(self, message: str, *, path: str = "") -> None:
        super().__init__(message)
        self.path = path


@dataclass(frozen=True, slots=True)
class GlobalID:
    """A Rails GlobalID (``gid://app/Model/id``): a reference to a record, kept as its URI."""

    uri: str

    def _parts(self) -> list[str]:
        rest = self.uri.removeprefix("gid://").split("?", 1)[0]
        return rest.split("/", 2) + ["", ""]

    @property
    def app(self) -> str:
        return self._parts()[0]

    @property
    def model_name(self) -> str:
        return self._parts()[1]

    @property
    def model_id(self) -> str:
        return unquote(self._parts()[2])


# --------------------------------------------------------------------------- writing


class _Refused(Exception):
    """Raised deep in the tree; each container level adds its step while it unwinds, so the
    success path never builds a path string."""

    def __init__(self, value: Any, reason: str, subject: str = "") -> None:
        super().__init__(reason)
        self.value = value
        self.reason = reason
        self.subject = subject
        self.steps: list[str] = []


class _Seen(set):  # type: ignore[type-arg]
    """The ids of the containers being written (cycle check), carrying the write policy, so
    that every writer keeps one extra argument."""

    __slots__ = ("policy",)

    def __init__(self, policy: WritePolicy) -> None:
        super().__init__()
        self.policy = policy


def serialize_arguments(
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    *,
    job_name: str | None = None,
    policy: WritePolicy = DEFAULT_POLICY,
) -> list[Any]:
    """Turn a Python call into Active Job's ``arguments`` list (JSON-ready).

    ``job_name`` only makes refusal messages name the job. Raises ``SerializationError``.
    """
    if not kwargs:
        for arg in args:
            kind = type(arg)
            if kind is str:
                if not arg.isascii() or "\x00" in arg:
                    break
            elif kind not in _JSON_SCALARS and not (kind is float and math.isfinite(arg)):
                break
        else:
            return list(args)
    return _serialize_slow(args, kwargs, job_name, policy)


def _serialize_slow(
    args: Sequence[Any], kwargs: Mapping[str, Any], job_name: str | None, policy: WritePolicy
) -> list[Any]:
    seen = _Seen(policy)
    out: list[Any] = []
    for index, arg in enumerate(args):
        try:
            out.append(_write(arg, seen))
        except _Refused as refused:
            raise _refusal_error(refused, index, job_name) from None
        except RecursionError:
            raise _too_deep_error(arg, index, job_name) from None
    if kwargs:
        trailing: dict[str, Any] = {}
        _enter(kwargs, seen)  # the trailing hash is a level of its own
        for name, value in kwargs.items():
            try:
                _check_key(name)
            except _Refused as refused:
                raise _bad_keyword_error(refused, job_name) from None
            try:
                trailing[str.__str__(name)] = _write(value, seen)
            except _Refused as refused:
                raise _refusal_error(refused, name, job_name) from None
            except RecursionError:
                raise _too_deep_error(value, name, job_name) from None
        trailing[_RUBY2_KEYWORDS_KEY] = list(kwargs)
        out.append(trailing)
    return out


def _where(root: int | str, steps: list[str]) -> str:
    if isinstance(root, int):
        top = f"argument {root + 1} (positional index {root})"
        return f"args[{root}]{''.join(steps)} (inside {top})" if steps else top
    top = f"keyword argument {root!r}"
    return f"kwargs[{root!r}]{''.join(steps)} (inside {top})" if steps else top


def _refusal_error(refused: _Refused, root: int | str, job_name: str | None) -> SerializationError:
    steps = refused.steps[::-1]
    path = (f"args[{root}]" if isinstance(root, int) else f"kwargs[{root!r}]") + "".join(steps)
    if len(steps) > 12:  # the message names a deep value's path by its two ends
        steps = [*steps[:6], f"...({len(steps) - 9} more)...", *steps[-3:]]
    where = _where(root, steps)
    type_name = type(refused.value).__name__
    if refused.subject:
        subject = f"{refused.subject} {refused.value!r} of type {type_name!r} in {where}"
    else:
        subject = f"{where} of type {type_name!r}"
    job = f" for job {job_name!r}" if job_name else ""
    return SerializationError(
        f"cannot serialise {subject}{job}: {refused.reason}", path=path, type_name=type_name
    )


def _bad_keyword_error(refused: _Refused, job_name: str | None) -> SerializationError:
    type_name = type(refused.value).__name__
    job = f" for job {job_name!r}" if job_name else ""
    return SerializationError(
        f"cannot serialise keyword argument name {refused.value!r} of type {type_name!r}{job}: "
        f"{refused.reason}",
        path=f"kwargs[{refused.value!r}]",
        type_name=type_name,
    )


def _too_deep_error(value: Any, root: int | str, job_name: str | None) -> SerializationError:
    job = f" for job {job_name!r}" if job_name else ""
    type_name = type(value).__name__
    return SerializationError(
        f"cannot serialise {_where(root, [])} of type {type_name!r}{job}: it is nested deeper "
        "than Python's recursion limit; flatten it or store it elsewhere and pass its id",
        path=f"args[{root}]" if isinstance(root, int) else f"kwargs[{root!r}]",
        type_name=type_name,
    )


def _write(value: Any, seen: set[int]) -> Any:
    kind = type(value)
    if kind is str:
        return _write_text(value)
    if kind in _JSON_SCALARS:
        return value
    if kind is float:
        return _write_float(value)
    if kind is list:
        return _write_list(value, seen)
    if kind is dict:
        return _write_dict(value, seen)
    writer = _WRITERS.get(kind)
    if writer is not None:
        return writer(value, seen)
    return _write_other(value, seen)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _text_problem(text: str) -> str | None:
    """Why Postgres's jsonb (UTF-8 text) cannot store ``text``, or None."""
    if text.isascii() and "\x00" not in text:
        return None
    nul = text.find("\x00")
    if nul >= 0:
        return (
            f"it contains a NUL character (\\x00) at index {nul}, which Postgres cannot store "
            "in JSON; remove it, or pass binary data base64-encoded"
        )
    lone = _SURROGATE.search(text)
    if lone is not None:
        return (
            f"it contains a lone surrogate ({lone.group()!r}) at index {lone.start()}, which is "
            "not valid Unicode text; decode bytes with errors='replace' or pass them "
            "base64-encoded"
        )
    return None


def _write_text(value: str) -> str:
    problem = _text_problem(value)
    if problem is not None:
        raise _Refused(value, problem)
    return value


def _write_float(value: float) -> float:
    if math.isfinite(value):
        return float(value)
    raise _Refused(value, "JSON cannot carry NaN or infinity; pass None or a string instead")


def _enter(container: Any, seen: set[int]) -> None:
    if id(container) in seen:
        raise _Refused(container, "it contains itself; JSON cannot carry a cycle")
    if len(seen) >= MAX_NESTING:  # ``seen`` holds the containers being written: the depth
        raise _Refused(
            container,
            f"it is nested more than {MAX_NESTING} containers deep, more than Rails (Ruby's "
            "JSON.parse) reads back; flatten it, or store it elsewhere and pass its id",
        )
    seen.add(id(container))


def _write_items(items: Any, seen: set[int], step: Callable[[int], str]) -> list[Any]:
    out = []
    for index, item in enumerate(items):
        try:
            out.append(_write(item, seen))
        except _Refused as refused:
            refused.steps.append(step(index))
            raise
    return out


def _list_step(index: int) -> str:
    return f"[{index}]"


def _write_list(value: list[Any], seen: set[int]) -> list[Any]:
    _enter(value, seen)
    out = _write_items(value, seen, _list_step)
    seen.discard(id(value))
    return out


def _check_key(key: Any) -> None:
    if not isinstance(key, str):  # str subclasses (StrEnum) are fine: their text is the key
        raise _Refused(
            key,
            "Active Job allows only string (and Ruby symbol) hash keys; convert the key with "
            "str() or use a list of pairs",
            subject="dict key",
        )
    problem = _text_problem(key)
    if problem is not None:
        raise _Refused(key, problem, subject="dict key")
    if str.__str__(key) in _RESERVED_KEYS:
        raise _Refused(
            key,
            "Active Job reserves this key for its own markers and would misread the hash; "
            "rename the key",
            subject="dict key",
        )


def _write_dict(value: Mapping[Any, Any], seen: set[int]) -> dict[str, Any]:
    _enter(value, seen)
    out: dict[str, Any] = {}
    for key, item in value.items():
        _check_key(key)
        try:
            out[str.__str__(key)] = _write(item, seen)
        except _Refused as refused:
            refused.steps.append(f"[{key!r}]")
            raise
    seen.discard(id(value))
    out[_SYMBOL_KEYS_KEY] = []
    return out


def _tagged(serializer: str, **fields: Any) -> dict[str, Any]:
    # Active Job puts the serializer name first (ObjectSerializer#serialize).
    return {_SERIALIZER_KEY: serializer, **fields}


def _iso_datetime(value: datetime, suffix: str) -> str:
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:"
        f"{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}000{suffix}"
    )


def _offset_suffix(value: datetime, offset: timedelta) -> str:
    # Rails writes "Z" only for zones named UTC (TimeWithZone#utc?, Time#utc?).
    if not offset and value.tzname() in ("UTC", "UCT"):
        return "Z"
    if offset.microseconds:
        raise _Refused(value, "its UTC offset has a fraction of a second, which ISO 8601 lacks")
    sign = "-" if offset < timedelta(0) else "+"
    minutes, seconds = divmod(abs(offset).seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{sign}{hours:02d}:{minutes:02d}" + (f":{seconds:02d}" if seconds else "")


def _write_datetime(value: datetime, seen: set[int]) -> dict[str, Any]:
    offset = value.utcoffset()
    if offset is None:
        policy: WritePolicy = seen.policy  # type: ignore[attr-defined]
        if policy.naive_datetimes == "utc":
            return _tagged(_TIME, value=_iso_datetime(value, "Z"))
        if policy.naive_datetimes == "keep" and not policy.active_job_compatible:
            return _tagged(_NAIVE_DATE_TIME, value=_iso_datetime(value, ""))
        raise _Refused(
            value,
            "a naive datetime names no moment (Ruby and other hosts would read another time); "
            "attach a zone, e.g. value.replace(tzinfo=datetime.timezone.utc), or set "
            "naive_datetimes='utc' to read naive values as UTC",
        )
    text = _iso_datetime(value, _offset_suffix(value, offset))
    zone = value.tzinfo
    if isinstance(zone, ZoneInfo):
        if zone.key:
            return _tagged(_TIME_WITH_ZONE, value=text, time_zone=zone.key)
        return _tagged(_TIME_WITH_ZONE, value=text)
    return _tagged(_TIME, value=text)


def _write_date(value: date, seen: set[int]) -> dict[str, Any]:
    return _tagged(_DATE, value=value.isoformat())


def _write_decimal(value: Decimal, seen: set[int]) -> dict[str, Any] | str:
    if not value.is_finite():
        raise _Refused(value, "only finite decimals are supported; pass None or a string instead")
    if seen.policy.decimal_format == "string":  # type: ignore[attr-defined]
        return str(value)  # how Active Job 6.1/7.0 write a BigDecimal; it reads back as str
    return _tagged(_BIG_DECIMAL, value=str(value))


def _symbol(name: str) -> dict[str, str]:
    return _tagged(_SYMBOL, value=name)


def _whole_or_fraction(microseconds: int) -> int | float:
    whole, fraction = divmod(microseconds, 1_000_000)
    return whole if not fraction else microseconds / 1_000_000


def _write_timedelta(value: timedelta, seen: set[int]) -> dict[str, Any]:
    total = (value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds
    # Like ActiveSupport::Duration.build: every part carries the sign.
    sign = -1 if total < 0 else 1
    rest = abs(total)
    parts: list[list[Any]] = []
    for name, seconds in _DURATION_PARTS_WRITTEN:
        count, rest = divmod(rest, seconds * 1_000_000)
        if count:
            parts.append([_symbol(name), sign * count])
    if rest or not parts:
        # The seconds part stays under a day, so a float keeps every microsecond.
        parts.append([_symbol("seconds"), sign * _whole_or_fraction(rest)])
    value_seconds = sign * _whole_or_fraction(abs(total))
    return _tagged(_DURATION, value=value_seconds, parts=parts)


def _python_only(value: Any, seen: set[int], fix: str) -> None:
    if seen.policy.active_job_compatible:  # type: ignore[attr-defined]
        raise _Refused(
            value,
            f"it would be written with a GoodJobMP:: serializer that a Rails app cannot read, "
            f"and active_job_compatible is on; {fix}",
        )


def _write_uuid(value: UUID, seen: set[int]) -> dict[str, Any]:
    _python_only(value, seen, "pass str(value)")
    return _tagged(_UUID, value=str(value))


def _write_tuple(value: tuple[Any, ...], seen: set[int]) -> dict[str, Any]:
    _python_only(value, seen, "pass a list")
    _enter(value, seen)
    out = _write_items(value, seen, _list_step)
    seen.discard(id(value))
    return _tagged(_TUPLE, value=out)


def _set_step(index: int) -> str:
    return "<item of set>"


def _write_set(value: set[Any] | frozenset[Any], seen: set[int]) -> dict[str, Any]:
    _python_only(value, seen, "pass a sorted list")
    _enter(value, seen)
    try:
        items = sorted(value)
        ordered = True
    except TypeError:
        items = list(value)
        ordered = False
    out = _write_items(items, seen, _set_step)
    if not ordered:
        # Mixed types have no natural order; the JSON text still gives a stable one.
        out.sort(key=lambda item: json.dumps(item, sort_keys=True))
    seen.discard(id(value))
    if isinstance(value, frozenset):
        return _tagged(_SET, value=out, frozen=True)
    return _tagged(_SET, value=out)


def _write_global_id(value: GlobalID, seen: set[int]) -> dict[str, str]:
    if not isinstance(value.uri, str) or not value.uri.startswith("gid://"):
        raise _Refused(value, "GlobalID.uri must be a 'gid://app/Model/id' string")
    return {_GLOBALID_KEY: value.uri}


_WRITERS: dict[type, Callable[[Any, set[int]], Any]] = {
    datetime: _write_datetime,
    date: _write_date,
    Decimal: _write_decimal,
    timedelta: _write_timedelta,
    UUID: _write_uuid,
    tuple: _write_tuple,
    set: _write_set,
    frozenset: _write_set,
    GlobalID: _write_global_id,
}


def _write_other(value: Any, seen: set[int]) -> Any:
    if isinstance(value, enum.Enum):
        if isinstance(value, int):
            return int(value)
        if isinstance(value, str):
            return _write_text(str.__str__(value))
        raise _Refused(
            value,
            "plain Enum members have no JSON form; pass member.value or member.name, or make "
            "the enum an IntEnum/StrEnum",
        )
    # Subclasses of the JSON types are written as the base type.
    if isinstance(value, str):
        return _write_text(str.__str__(value))
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _write_float(value)
    if isinstance(value, list):
        return _write_list(value, seen)
    if isinstance(value, Mapping):
        return _write_dict(value, seen)
    for kind, writer in _WRITERS.items():  # datetime is listed before date on purpose
        if isinstance(value, kind):
            return writer(value, seen)
    raise _Refused(value, _refusal_hint(value))


def _refusal_hint(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return (
            "binary data has no JSON form; encode it as text first, e.g. "
            "base64.b64encode(data).decode('ascii'), and decode it inside the job"
        )
    if isinstance(value, type):
        return "classes cannot be stored; pass the class's dotted name and import it in the job"
    if callable(value):
        name = getattr(value, "__qualname__", None)
        named = f" ({name})" if name else ""
        return (
            f"functions and other callables{named} cannot be stored; pass a dotted name "
            "(e.g. 'myapp.tasks.func') and look it up inside the job"
        )
    if is_dataclass(value):
        return (
            f"{_SUPPORTED}; pass dataclasses.asdict(value) (or just an id) and rebuild the "
            "object inside the job"
        )
    return f"{_SUPPORTED}; pass an id or a plain dict and rebuild the object inside the job"


# --------------------------------------------------------------------------- JSON text

# A JSON string (skipped whole) or a number in exponent notation >= 1e16, the only floats
# Python writes with "e+".
_STRING_OR_BIG_FLOAT = re.compile(r'"(?:[^"\\]|\\.)*"|(-?\d+(?:\.\d+)?e\+\d+)')


def _positional(match: re.Match[str]) -> str:
    number = match.group(1)
    if number is None:
        return match.group(0)
    return format(Decimal(number), "f") + ".0"


# One encoder for every call: json.dumps with options builds a new JSONEncoder each time.
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def dumps(value: Any) -> str:
    """Compact JSON for jsonb columns. Postgres stores ``1e+300`` (and ``1.0e+300``) as a
    numeric without a fraction, which every reader then takes for an integer; written as
    ``1000…0.0`` it stays a float for Python (and Ruby) readers."""
    text = _encode(value)
    if "e+" not in text:
        return text
    return _STRING_OR_BIG_FLOAT.sub(_positional, text)


# --------------------------------------------------------------------------- reading


class _Unreadable(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.steps: list[str] = []
        self.named = False  # whether the reason already names the serializer


def deserialize_arguments(arguments: list[Any]) -> tuple[list[Any], dict[str, Any]]:
    """Turn Active Job's ``arguments`` list back into ``(args, kwargs)``.

    Raises ``DeserializationError`` naming the unreadable part.
    """
    if not isinstance(arguments, list):
        raise DeserializationError(
            "serialized_params['arguments'] must be a JSON array, got "
            f"{type(arguments).__name__}: {_short(arguments)}",
            path="arguments",
        )
    for arg in arguments:
        if type(arg) not in _JSON_LEAVES:
            break
    else:
        return list(arguments), {}
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    last = len(arguments) - 1
    for index, arg in enumerate(arguments):
        try:
            if index == last and type(arg) is dict:
                value, is_keywords = _read_hash(arg)
                if is_keywords:
                    kwargs = value
                    continue
                args.append(value)
            else:
                args.append(_read(arg))
        except _Unreadable as unreadable:
            path = f"arguments[{index}]" + "".join(unreadable.steps[::-1])
            raise DeserializationError(
                f"cannot read {path}: {unreadable.reason}", path=path
            ) from None
        except RecursionError:
            # The reader recurses once per level: a value that json.loads could still decode
            # may be too deep for it (the writer refuses such values, see _too_deep_error).
            path = f"arguments[{index}]"
            raise DeserializationError(
                f"cannot read {path}: it is nested deeper than Python's recursion limit",
                path=path,
            ) from None
    return args, kwargs


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _read(value: Any) -> Any:
    kind = type(value)
    if kind in _JSON_LEAVES:
        return value
    if kind is list:
        return _read_list(value)
    if kind is dict:
        return _read_hash(value)[0]
    raise _Unreadable(f"{kind.__name__} is not a JSON value: {_short(value)}")


def _read_list(value: list[Any]) -> list[Any]:
    out = []
    for index, item in enumerate(value):
        try:
            out.append(_read(item))
        except _Unreadable as unreadable:
            unreadable.steps.append(f"[{index}]")
            raise
    return out


def _present(value: Any) -> bool:
    # Ruby truthiness: only nil and false are false.
    return value is not None and value is not False


def _read_hash(value: dict[str, Any]) -> tuple[Any, bool]:
    """Returns the value and whether it is a keyword-arguments hash."""
    if len(value) == 1 and _GLOBALID_KEY in value:
        return GlobalID(_field(value, _GLOBALID_KEY, str)), False
    if _SERIALIZER_KEY in value:
        return _read_tagged(value), False
    out = {}
    for key, item in value.items():
        try:
            out[key] = _read(item)
        except _Unreadable as unreadable:
            unreadable.steps.append(f"[{key!r}]")
            raise
    # Same order and precedence as ActiveJob::Arguments#deserialize_hash.
    if _present(out.pop(_INDIFFERENT_KEY, None)):
        return out, False
    if _present(out.pop(_SYMBOL_KEYS_KEY, None)):
        return out, False
    if _present(out.pop(_RUBY2_KEYWORDS_KEY, None)):
        return out, True
    return out, False


def _field(value: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in value:
        raise _Unreadable(f"{value.get(_SERIALIZER_KEY, 'hash')} payload lacks {name!r}")
    item = value[name]
    if not isinstance(item, kind) or isinstance(item, bool):
        unreadable = _Unreadable(f"expected {_kind_name(kind)}, got {_short(item)}")
        unreadable.steps.append(f"[{name!r}]")
        raise unreadable
    return item


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def _read_tagged(value: dict[str, Any]) -> Any:
    name = value[_SERIALIZER_KEY]
    reader = _READERS.get(name) if isinstance(name, str) else None
    if reader is None:
        unknown = _Unreadable(
            f"unknown {_SERIALIZER_KEY} class {name!r}: goodjob_mp reads Active Job's built-in "
            "serializers and its own GoodJobMP:: ones; a custom Ruby serializer has no Python "
            "counterpart, so pass plain JSON values to jobs shared between Ruby and Python"
        )
        unknown.named = True
        raise unknown
    try:
        return reader(value)
    except _Unreadable as unreadable:
        if not unreadable.named:
            unreadable.reason = f"{name}: {unreadable.reason}"
            unreadable.named = True
        raise


_ISO_DATETIME = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:[.,](\d+))?"
    r"(?:(Z|z)|([+-])(\d\d):?(\d\d)(?::?(\d\d))?)?"
)


def _parse_datetime(value: dict[str, Any], *, aware: bool) -> datetime:
    text = _field(value, "value", str)
    match = _ISO_DATETIME.fullmatch(text)
    has_offset = match is not None and (match[8] is not None or match[9] is not None)
    if match is None or has_offset != aware:
        wanted = "with" if aware else "without"
        raise _Unreadable(f"expected an ISO 8601 date-time {wanted} a UTC offset, got {text!r}")
    zone = None
    if match[8]:
        zone = timezone.utc
    elif match[9]:
        offset = timedelta(
            hours=int(match[10]), minutes=int(match[11]), seconds=int(match[12] or 0)
        )
        zone = timezone(-offset if match[9] == "-" else offset)
    fraction = (match[7] or "")[:6].ljust(6, "0")  # Ruby keeps nanoseconds; Python cannot
    try:
        year, month, day, hour, minute, second = (int(match[i]) for i in range(1, 7))
        return datetime(year, month, day, hour, minute, second, int(fraction), tzinfo=zone)
    except ValueError as exc:
        raise _Unreadable(f"invalid date-time {text!r}: {exc}")


def _read_time(value: dict[str, Any]) -> datetime:
    return _parse_datetime(value, aware=True)


def _read_time_with_zone(value: dict[str, Any]) -> datetime:
    moment = _parse_datetime(value, aware=True)
    name = value.get("time_zone")
    if name is None:
        # Rails before 7.1.3 does not say; Ruby would use the app's zone, Python keeps the offset.
        return moment
    if not isinstance(name, str):
        raise _Unreadable(f"'time_zone' must be a string, got {_short(name)}")
    try:
        return moment.astimezone(ZoneInfo(name))
    except ZoneInfoNotFoundError:
        raise _Unreadable(
            f"time zone {name!r} is unknown on this host; install the system tz database or "
            "the 'tzdata' Python package"
        )
    except (ValueError, OSError) as exc:
        raise _Unreadable(f"invalid time_zone {name!r}: {exc}")


def _read_naive(value: dict[str, Any]) -> datetime:
    return _parse_datetime(value, aware=False)


def _read_date(value: dict[str, Any]) -> date:
    text = _field(value, "value", str)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _Unreadable(f"expected an ISO 8601 date (YYYY-MM-DD), got {text!r}")


def _read_decimal(value: dict[str, Any]) -> Decimal:
    text = _field(value, "value", str)
    try:
        return Decimal(text)
    except InvalidOperation:
        raise _Unreadable(f"not a decimal number: {text!r}")


def _read_name(value: dict[str, Any]) -> str:
    return _field(value, "value", str)


def _amount(item: Any) -> int | float:
    if isinstance(item, Decimal):
        return float(item)
    if isinstance(item, (int, float)) and not isinstance(item, bool):
        return item
    raise _Unreadable(f"a duration amount must be a number, got {_short(item)}")


def _read_duration(value: dict[str, Any]) -> timedelta:
    raw_parts = value.get("parts")
    if not raw_parts:
        return timedelta(seconds=_amount(_read(_field(value, "value", (int, float, dict)))))
    parts = _read(raw_parts)
    total = timedelta(0)
    if not isinstance(parts, list):
        raise _Unreadable(f"'parts' must be a list of [unit, amount] pairs, got {_short(parts)}")
    for part in parts:
        if not (isinstance(part, list) and len(part) == 2):
            raise _Unreadable(f"a duration part must be [unit, amount], got {_short(part)}")
        unit, amount = part
        seconds = _DURATION_PART_SECONDS.get(unit) if isinstance(unit, str) else None
        if seconds is None:
            raise _Unreadable(
                f"unknown duration unit {unit!r}; known: {', '.join(_DURATION_PART_SECONDS)}"
            )
        total += timedelta(seconds=_amount(amount) * seconds)
    return total


def _read_uuid(value: dict[str, Any]) -> UUID:
    text = _field(value, "value", str)
    try:
        return UUID(text)
    except ValueError:
        raise _Unreadable(f"not a UUID: {text!r}")


def _read_tuple(value: dict[str, Any]) -> tuple[Any, ...]:
    items = _field(value, "value", list)
    return tuple(_read_list(items))


def _read_set(value: dict[str, Any]) -> set[Any] | frozenset[Any]:
    items = _read_list(_field(value, "value", list))
    try:
        return frozenset(items) if _present(value.get("frozen")) else set(items)
    except TypeError as exc:
        raise _Unreadable(f"set items must be hashable: {exc}")


_READERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    _SYMBOL: _read_name,
    _MODULE: _read_name,
    _TIME: _read_time,
    _TIME_WITH_ZONE: _read_time_with_zone,
    _DATE_TIME: _read_time,
    _DATE: _read_date,
    _DURATION: _read_duration,
    _BIG_DECIMAL: _read_decimal,
    _NAIVE_DATE_TIME: _read_naive,
    _UUID: _read_uuid,
    _TUPLE: _read_tuple,
    _SET: _read_set,
}
