"""The queue-pool string parser: every accepted form, every refused form and its message."""

from __future__ import annotations

import dataclasses

import pytest

from goodjob_mp.queues import (
    MAX_POOL_THREADS,
    PoolSpec,
    QueueSelector,
    QueueStringError,
    parse_pools,
    parse_queue_selector,
)

ALL = QueueSelector("all", ())


def inc(*names: str) -> QueueSelector:
    return QueueSelector("include", names)


def ordered(*names: str) -> QueueSelector:
    return QueueSelector("include", names, ordered=True)


def exc(*names: str) -> QueueSelector:
    return QueueSelector("exclude", names)


# --- selectors -----------------------------------------------------------------------------

SELECTORS = [
    ("*", ALL, "*"),
    (" * ", ALL, "*"),
    ("mail", inc("mail"), "mail"),
    ("a,b", inc("a", "b"), "a,b"),
    (" a , b ", inc("a", "b"), "a,b"),
    ("+high,low", ordered("high", "low"), "+high,low"),
    ("+ high , low", ordered("high", "low"), "+high,low"),
    ("+only", ordered("only"), "+only"),
    ("-slow", exc("slow"), "-slow"),
    ("- slow, slower", exc("slow", "slower"), "-slow,slower"),
    ("low-priority", inc("low-priority"), "low-priority"),
    ("a+b", inc("a+b"), "a+b"),
    ("mailers.v2", inc("mailers.v2"), "mailers.v2"),
    ("Mail,mail", inc("Mail", "mail"), "Mail,mail"),
    ("b,a", inc("b", "a"), "b,a"),
    ("日本", inc("日本"), "日本"),
]


@pytest.mark.parametrize(("text", "selector", "canonical"), SELECTORS)
def test_parse_queue_selector(text: str, selector: QueueSelector, canonical: str) -> None:
    parsed = parse_queue_selector(text)
    assert parsed == selector
    assert str(parsed) == canonical
    assert parse_queue_selector(canonical) == parsed


MATCHES = [
    ("*", "anything", True),
    ("*", "", True),
    ("mail", "mail", True),
    ("mail", "Mail", False),
    ("mail", "mailers", False),
    ("a,b", "b", True),
    ("a,b", "c", False),
    ("+a,b", "a", True),
    ("+a,b", "c", False),
    ("-slow", "slow", False),
    ("-slow", "fast", True),
    ("-a,b", "b", False),
    ("-a,b", "default", True),
]


@pytest.mark.parametrize(("text", "queue", "expected"), MATCHES)
def test_selector_matches(text: str, queue: str, expected: bool) -> None:
    assert parse_queue_selector(text).matches(queue) is expected


# --- pools ---------------------------------------------------------------------------------

POOLS = [
    ("*", [PoolSpec(ALL, None, "*")]),
    ("mail", [PoolSpec(inc("mail"), None, "mail")]),
    (
        "mail:2;billing:1;*",
        [
            PoolSpec(inc("mail"), 2, "mail:2"),
            PoolSpec(inc("billing"), 1, "billing:1"),
            PoolSpec(ALL, None, "*"),
        ],
    ),
    ("+high,low:3", [PoolSpec(ordered("high", "low"), 3, "+high,low:3")]),
    ("-slow", [PoolSpec(exc("slow"), None, "-slow")]),
    ("*:5;*:5", [PoolSpec(ALL, 5, "*:5"), PoolSpec(ALL, 5, "*:5")]),
    (" mail : 2 ; * ", [PoolSpec(inc("mail"), 2, "mail:2"), PoolSpec(ALL, None, "*")]),
    ("a:02", [PoolSpec(inc("a"), 2, "a:2")]),
    ("a:+2", [PoolSpec(inc("a"), 2, "a:2")]),
    (f"a:{MAX_POOL_THREADS}", [PoolSpec(inc("a"), 1000, "a:1000")]),
    ("a:1", [PoolSpec(inc("a"), 1, "a:1")]),
    # The same queue in different pools is allowed, as in GoodJob.
    (
        "mail:1;mail,sms:2",
        [PoolSpec(inc("mail"), 1, "mail:1"), PoolSpec(inc("mail", "sms"), 2, "mail,sms:2")],
    ),
    ("-mail;mail", [PoolSpec(exc("mail"), None, "-mail"), PoolSpec(inc("mail"), None, "mail")]),
]


@pytest.mark.parametrize(("text", "pools"), POOLS)
def test_parse_pools(text: str, pools: list[PoolSpec]) -> None:
    parsed = parse_pools(text)
    assert parsed == pools
    # The canonical text of every pool parses back to the same pools.
    assert parse_pools(";".join(pool.text for pool in parsed)) == parsed


def test_pool_text_is_selector_text_plus_count() -> None:
    for pool in parse_pools("+a,b:4;-c;*:1"):
        suffix = "" if pool.threads is None else f":{pool.threads}"
        assert pool.text == f"{pool.selector}{suffix}"


@pytest.mark.parametrize(("text", "default", "expected"), [("a:3", 7, 3), ("a", 7, 7), ("*", 1, 1)])
def test_thread_count(text: str, default: int, expected: int) -> None:
    assert parse_pools(text)[0].thread_count(default) == expected


@pytest.mark.parametrize("default", [0, -1, True, 2.5, None])
def test_thread_count_refuses_bad_default(default: object) -> None:
    with pytest.raises(ValueError, match=r"default thread count .* pool 'a'.*>= 1"):
        parse_pools("a")[0].thread_count(default)  # type: ignore[arg-type]


def test_specs_are_frozen_and_hashable() -> None:
    pool = parse_pools("+a,b:2")[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        pool.threads = 3  # type: ignore[misc]
    assert len({pool, parse_pools("+a,b:2")[0]}) == 1


# --- refused pool strings ------------------------------------------------------------------
# Each row: the string, then fragments the message must contain (the bad part and the fix).

BAD_POOLS = [
    ("", ["''", "is empty", "'*'"]),
    ("   ", ["'   '", "is empty"]),
    ("a;;b", ["pool 2 is empty", "two ';' in a row", "remove the extra ';'"]),
    (";a", ["pool 1 is empty", "at the start"]),
    ("a;", ["pool 2 is empty", "at the end"]),
    ("a; ;b", ["pool 2 is empty"]),
    (";", ["pool 1 is empty"]),
    ("mail:0;*", ["pool 1 'mail:0' has thread count 0; use a whole number >= 1"]),
    ("*;a:-1", ["pool 2 'a:-1'", "thread count -1", ">= 1"]),
    ("a:x", ["pool 1 'a:x'", "thread count 'x'", "not a whole number"]),
    ("a:2.5", ["'2.5'", "not a whole number"]),
    ("a:2 5", ["'2 5'", "not a whole number"]),
    ("a:", ["pool 1 'a:'", "no thread count", "drop the ':'"]),
    ("a: ", ["pool 1 'a:'", "no thread count"]),
    ("a:2:3", ["pool 1 'a:2:3'", "more than one ':'"]),
    ("a::3", ["pool 1 'a::3'", "more than one ':'"]),
    (":2", ["pool 1 ':2'", "no queues before ':'", "'*:2'"]),
    (":", ["pool 1 ':'", "no queues before ':'"]),
    (f"a:{MAX_POOL_THREADS + 1}", ["thread count 1001", "sanity bound of 1000", "1..1000"]),
    ("a:99999999999999999999", ["sanity bound"]),
    ("a,,b", ["pool 1 'a,,b'", "empty queue name at position 2", "two ',' in a row"]),
    ("a,", ["pool 1 'a,'", "empty queue name at position 2", "trailing ','"]),
    (",a", ["empty queue name at position 1", "leading ','"]),
    ("a, ,b:2", ["pool 1 'a, ,b:2'", "empty queue name at position 2"]),
    ("+-a", ["pool 1 '+-a'", "combines '+' and '-'"]),
    ("-+a", ["pool 1 '-+a'", "combines '+' and '-'"]),
    ("++a", ["repeats '+'"]),
    ("--a", ["repeats '-'"]),
    ("+", ["pool 1 '+'", "'+' with no queue names", "'+high,low'"]),
    ("-", ["pool 1 '-'", "'-' with no queue names", "'-slow'"]),
    ("+ :2", ["'+' with no queue names"]),
    ("*,a", ["pool 1 '*,a'", "mixes '*' with queue names"]),
    ("a,*", ["mixes '*' with queue names"]),
    ("*,*", ["mixes '*' with queue names"]),
    ("+*", ["pool 1 '+*'", "puts '+' before '*'"]),
    ("-*", ["pool 1 '-*'", "puts '-' before '*'"]),
    ("-a,*", ["puts '-' before '*'"]),
    ("a,b,a", ["pool 1 'a,b,a'", "lists queue 'a' twice"]),
    ("-x, x", ["lists queue 'x' twice"]),
    ("+a,a:2", ["lists queue 'a' twice"]),
    ("my queue", ["pool 1 'my queue'", "queue name 'my queue' with whitespace inside"]),
    ("a,my\tqueue", ["'my\\tqueue' with whitespace inside"]),
    ("mail*", ["queue name 'mail*' containing '*'", "wildcards are not supported"]),
    ("a,-b", ["'-' in front of queue name 2 '-b'", "whole pool"]),
    ("a,+b", ["'+' in front of queue name 2 '+b'"]),
    ("*;a,,b;c", ["pool 2 'a,,b'", "position 2"]),
]


@pytest.mark.parametrize(("text", "fragments"), BAD_POOLS)
def test_parse_pools_refuses(text: str, fragments: list[str]) -> None:
    with pytest.raises(QueueStringError) as caught:
        parse_pools(text)
    message = str(caught.value)
    assert message.startswith(f"invalid --queues {text!r}: ")
    for fragment in fragments:
        assert fragment in message


def test_error_is_a_value_error_and_names_the_setting() -> None:
    with pytest.raises(ValueError, match=r"^invalid GOOD_JOB_QUEUES 'a:0': pool 1 'a:0'"):
        parse_pools("a:0", setting="GOOD_JOB_QUEUES")


# --- refused selectors ---------------------------------------------------------------------

BAD_SELECTORS = [
    ("", ["is empty"]),
    ("  ", ["is empty"]),
    ("a,,b", ["empty queue name at position 2"]),
    ("a,", ["empty queue name at position 2", "trailing ','"]),
    ("+-a", ["combines '+' and '-'"]),
    ("-+a", ["combines '+' and '-'"]),
    ("+", ["'+' with no queue names"]),
    ("-", ["'-' with no queue names"]),
    ("*,a", ["mixes '*'"]),
    ("+*", ["puts '+' before '*'"]),
    ("-*", ["puts '-' before '*'"]),
    ("a,a", ["lists queue 'a' twice"]),
    ("a b", ["'a b' with whitespace inside"]),
    ("a:2", ["queue name 'a:2' containing ':'", "thread count"]),
    ("a;b", ["queue name 'a;b' containing ';'", "separates pools"]),
    ("a*", ["containing '*'"]),
]


@pytest.mark.parametrize(("text", "fragments"), BAD_SELECTORS)
def test_parse_queue_selector_refuses(text: str, fragments: list[str]) -> None:
    with pytest.raises(QueueStringError) as caught:
        parse_queue_selector(text)
    message = str(caught.value)
    assert message.startswith(f"invalid queue selector {text!r}: it ")
    for fragment in fragments:
        assert fragment in message


# --- direct construction keeps the invariants ----------------------------------------------

BAD_CONSTRUCTIONS = [
    (("any", ("a",)), {}, "kind 'any' is unknown"),
    (("all", ("a",)), {}, "'all' takes no names"),
    (("include", ()), {}, "need at least one"),
    (("exclude", ()), {}, "need at least one"),
    (("include", ["a"]), {}, "must be a tuple"),
    (("exclude", ("a",)), {"ordered": True}, "cannot be ordered"),
    (("all", ()), {"ordered": True}, "cannot be ordered"),
]


@pytest.mark.parametrize(("args", "kwargs", "fragment"), BAD_CONSTRUCTIONS)
def test_selector_construction_checks(args: tuple, kwargs: dict, fragment: str) -> None:
    with pytest.raises(ValueError) as caught:
        QueueSelector(*args, **kwargs)
    assert fragment in str(caught.value)
