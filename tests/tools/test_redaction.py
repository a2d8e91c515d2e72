"""Secret redaction: the rules, the properties, and the effect boundary end to end."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections.abc import Callable
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from nexus import redaction
from nexus.agents.base import AgentCall, AgentContext, FunctionAgent
from nexus.cli import app
from nexus.domain.events import EventType
from nexus.domain.plan import Plan, TaskSpec
from nexus.engine.facade import Engine
from nexus.redaction import (
    MIN_SECRET_LENGTH,
    REDACTED,
    Redactor,
    default_redactor,
    is_secret_key,
    register_secret,
)
from nexus.store.sqlite import SQLiteStore
from nexus.tools.base import ToolContext
from nexus.tools.builtins import ShellTool, builtin_tools

OPENAI_LIKE = "sk-proj-Tq8vX2mN4pL7rK9sW3yZ5bC1dF6gH0jQ"
R = Redactor()


# -- rule 1: key names ----------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "api_key",
        "apiKey",
        "X-Api-Key",
        "token",
        "access_token",
        "GITHUB_TOKEN",
        "secret",
        "client_secret",
        "password",
        "db.passwd",
        "Authorization",
        "Proxy-Authorization",
        "cookie",
        "Set-Cookie",
        "private_key",
        "aws_secret_access_key",
        "credentials",
        "passphrase",
        "auth",
    ],
)
def test_secret_key_names(name: str) -> None:
    assert is_secret_key(name)
    assert R.redact({name: "s3cr3t-value"}) == {name: REDACTED}


@pytest.mark.parametrize(
    "name", ["max_tokens", "tokens", "token_count", "secretary", "key", "author", "path", "cmd"]
)
def test_ordinary_key_names_are_kept(name: str) -> None:
    assert not is_secret_key(name)
    assert R.redact({name: "plain"}) == {name: "plain"}


def test_secret_keys_are_found_at_any_depth_and_replace_whole_values() -> None:
    data = {
        "headers": {"Authorization": "Bearer abc", "Accept": "text/plain"},
        "items": [{"password": 1234}, {"token": ["a", "b"]}, {"cookie": {"sid": "x"}}],
        "api_key": None,
        "secret": "",
        "token": False,
        "max_tokens": 512,
    }
    assert R.redact(data) == {
        "headers": {"Authorization": REDACTED, "Accept": "text/plain"},
        "items": [{"password": REDACTED}, {"token": REDACTED}, {"cookie": REDACTED}],
        # nothing to hide: kept, so a record still says the field was empty
        "api_key": None,
        "secret": "",
        "token": False,
        "max_tokens": 512,
    }


# -- rule 2: shapes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"echo {OPENAI_LIKE}", "echo [redacted]"),
        ("sk-ant-api03-AbCdEf0123456789GhIjKl-xyz", "[redacted]"),
        ("ghp_0123456789abcdefghijABCDEFGHIJ012345", "[redacted]"),
        ("github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "[redacted]"),
        ("xoxb-1234567890-0987654321-AbCdEfGh", "[redacted]"),
        ("key AKIAIOSFODNN7EXAMPLE here", "key [redacted] here"),
        ("sk_live_0123456789abcdefABCDEF", "[redacted]"),
        ("AIzaSyA-0123456789abcdefghijklmnopqrstu", "[redacted]"),
        ("hf_abcdefghijklmnopqrstuvwxyzABCDEFGH", "[redacted]"),
        (
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_Xg",
            "jwt [redacted]",
        ),
        (
            "a\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nIBAAK\n-----END RSA PRIVATE KEY-----\nb",
            "a\n[redacted]\nb",
        ),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn (cut off", "[redacted]"),
        (
            'curl -H "Authorization: Bearer abc.def.ghi" https://api',
            'curl -H "Authorization: Bearer [redacted]" https://api',
        ),
        ("authorization=Basic dXNlcjpwYXNz", "authorization=Basic [redacted]"),
        ("got bearer QWERTYUIOP123 back", "got bearer [redacted] back"),
        ("export OPENAI_API_KEY=abc123 && go", "export OPENAI_API_KEY=[redacted] && go"),
        ("GET /x?access_token=abc&page=2", "GET /x?access_token=[redacted]&page=2"),
        ('{"password": "hunter2", "user": "bob"}', '{"password": [redacted], "user": "bob"}'),
        ("secret: [a, b]", "secret: [redacted]"),
        ("postgres://bob:pa55@db:5432/x", "postgres://bob:[redacted]@db:5432/x"),
    ],
)
def test_secret_shapes_in_text(text: str, expected: str) -> None:
    assert R.redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "max_tokens=5, token_count: 3, tokens: 7",
        "task-abcdefghijklmnopqrstuvwxyz-long-slug",  # no digit: a slug, not a key
        "risk-0123456789abcdefghijklmnop",  # 'sk-' inside a word
        "the secretary: bob",
        "http://host:8080/path",
        "Bearer short",
        "AKIA-not-a-key",
        "echo hello > out.txt",
    ],
)
def test_ordinary_text_is_kept(text: str) -> None:
    assert R.redact_text(text) == text


def test_keys_are_redacted_like_strings_and_collisions_keep_the_first() -> None:
    assert R.redact({OPENAI_LIKE: 1, "a": 2}) == {REDACTED: 1, "a": 2}
    other = "sk-Zz9" + "a" * 20
    assert R.redact({OPENAI_LIKE: 1, other: 2}) == {REDACTED: 1}


# -- rule 3: registered secrets ----------------------------------------------------------


def test_registered_secrets_are_replaced_wherever_they_occur() -> None:
    r = Redactor(["pl41n-l00king", "zz"])
    assert r.secret_count == 1  # too short to register: "zz"
    assert r.redact({"cmd": "login --pw=xpl41n-l00kingx", "list": ["pl41n-l00king"]}) == {
        "cmd": "login --pw=x[redacted]x",
        "list": [REDACTED],
    }
    assert r.redact_text("zz top") == "zz top"


def test_longest_registered_secret_wins() -> None:
    r = Redactor(["abcdefgh", "abcdefgh-and-more"])
    assert r.redact_text("<abcdefgh-and-more>") == "<[redacted]>"


def test_numeric_secrets_are_found_in_numbers() -> None:
    r = Redactor(["123456789"])
    assert r.redact({"pin": 91234567890, "n": 7, "ok": True}) == {
        "pin": REDACTED,
        "n": 7,
        "ok": True,
    }


def test_matches_made_by_a_replacement_are_redacted_too() -> None:
    # replacing the registered secret puts "]" before "sk-": now a key's shape
    r = Redactor(["Qwertyuix"])
    once = r.redact_text("Qwertyuixsk-abcdefghij0123456789abc")
    assert once == "[redacted][redacted]"
    assert r.redact_text(once) == once
    # a secret that only appears once its neighbour is replaced
    r = Redactor(["xxxxxxxx", "d]abcdefg"])
    assert r.redact_text("xxxxxxxxabcdefg") == "[redacte[redacted]"


def test_secrets_inside_the_replacement_text_are_refused() -> None:
    r = Redactor()
    assert not r.add_secret("redacted")
    assert not r.add_secret("short")
    assert r.add_secret("a-long-enough-secret")


def test_from_environ_registers_secret_named_variables() -> None:
    env = {
        "OPENAI_API_KEY": "abc-openai-0001",
        "ANTHROPIC_API_KEY": "abc-anthropic-0002",
        "GITHUB_TOKEN": "abc-github-0003",
        "DB_PASSWORD": "abc-db-pass-0004",
        "SIGNING_SECRET": "abc-signing-0005",
        "SHORT_TOKEN": "tiny",
        "HOME": "/home/somebody-long",
        "KEYBOARD": "some-long-layout",
    }
    r = Redactor.from_environ(env)
    assert r.secret_count == 5
    text = " ".join(env.values())
    assert r.redact_text(text) == " ".join([REDACTED] * 5 + ["tiny", *list(env.values())[6:]])


def test_default_redactor_is_shared_and_takes_registrations() -> None:
    secret = "default-registered-Y7h2"
    assert register_secret(secret)
    assert default_redactor() is default_redactor()
    assert default_redactor().redact_text(f"x{secret}") == f"x{REDACTED}"


# -- properties ----------------------------------------------------------------------------

_FRAGMENTS = st.sampled_from(
    [
        "sk-",
        "token",
        "=",
        ": ",
        "Bearer ",
        "Authorization: ",
        "[redacted]",
        "[",
        "]",
        "ghp_",
        "://u:",
        "@",
        "-----BEGIN RSA PRIVATE KEY-----",
        "0123456789abcdefghij",
        "AKIA",
        "password",
        "\n",
        '"',
    ]
)
_SECRETS = st.lists(
    st.text(min_size=MIN_SECRET_LENGTH, max_size=16).filter(lambda s: s not in REDACTED),
    max_size=3,
)


def _texts(secrets: list[str]) -> st.SearchStrategy[str]:
    pieces = st.one_of(st.text(max_size=12), _FRAGMENTS, *[st.just(s) for s in secrets])
    return st.lists(pieces, max_size=8).map("".join)


def _json(texts: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), texts)
    keys = st.one_of(texts, st.sampled_from(["api_key", "token", "max_tokens", "cmd"]))
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)
        ),
        max_leaves=12,
    )


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list | tuple):
        return [s for item in value for s in _strings(item)]
    return []


@st.composite
def _case(draw: st.DrawFn) -> tuple[list[str], Any]:
    secrets = draw(_SECRETS)
    return secrets, draw(_json(_texts(secrets)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_case())
def test_redaction_is_idempotent_and_deterministic(case: tuple[list[str], Any]) -> None:
    secrets, data = case
    once = Redactor(secrets).redact(data)
    assert Redactor(secrets).redact(once) == once
    assert Redactor(reversed(secrets)).redact(data) == once  # registration order is irrelevant


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_case())
def test_no_registered_secret_survives(case: tuple[list[str], Any]) -> None:
    secrets, data = case
    redactor = Redactor(secrets)
    out = redactor.redact(data)
    for text in _strings(out):
        for secret in secrets:
            assert secret not in text, (secret, text)


_PLAIN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789 ./,éü✓", max_size=30).filter(
    lambda s: "bearer" not in s
)
_PLAIN_KEYS = _PLAIN.filter(lambda k: not is_secret_key(k))


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), _PLAIN),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(_PLAIN_KEYS, inner, max_size=4)
        ),
        max_leaves=15,
    )
)
def test_non_secret_data_is_unchanged(data: Any) -> None:
    # registered secrets use characters the data never holds
    redactor = Redactor(["UPPER-SECRET-1", "ANOTHER_SECRET_2"])
    assert redactor.redact(data) == data


# -- the walk against a reference ------------------------------------------------------


class _Colour(StrEnum):
    RED = "red"


class _Pin(IntEnum):
    PIN = 7123456789


_OPAQUE = object()


def _reference_redact(text: Callable[[str], str], secrets: tuple[str, ...], value: Any) -> Any:
    """``Redactor.redact`` as first written: one call per node, nothing remembered."""
    if isinstance(value, str):
        return text(value)
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                out.setdefault(key, _reference_redact(text, secrets, item))
            elif is_secret_key(key) and not (item is None or isinstance(item, bool) or item == ""):
                out.setdefault(text(key), REDACTED)
            else:
                out.setdefault(text(key), _reference_redact(text, secrets, item))
        return out
    if isinstance(value, list):
        return [_reference_redact(text, secrets, item) for item in value]
    if isinstance(value, tuple):
        return tuple(_reference_redact(text, secrets, item) for item in value)
    if isinstance(value, int | float) and not isinstance(value, bool) and secrets:
        digits = str(value)
        if any(secret in digits for secret in secrets):
            return REDACTED
    return value


def _typed(value: Any) -> Any:
    """``value`` with every node's type beside it (str subclasses count as str)."""
    if isinstance(value, dict):
        return (dict, [(_typed(k), _typed(v)) for k, v in value.items()])
    if isinstance(value, list | tuple):
        return (type(value), [_typed(v) for v in value])
    return (str if isinstance(value, str) else type(value), value)


_SECRETS_OR_DIGITS = st.lists(
    st.one_of(
        st.text(min_size=MIN_SECRET_LENGTH, max_size=16),
        st.text(alphabet="0123456789", min_size=MIN_SECRET_LENGTH, max_size=10),
        st.sampled_from(["1.5e+16-x", "12345678.5", "-123456789", "-infinity"]),
    ),
    max_size=3,
)


def _as_numbers(secret: str) -> list[Any]:
    """Numbers whose text holds ``secret``, when there are any."""
    if secret.isascii() and secret.isdigit():
        return [int(f"7{secret}3"), float(f"0.{secret}")]
    try:
        return [float(secret)] if secret.isascii() else []
    except ValueError:
        return []


def _numbers(secrets: list[str]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(),
        st.floats(allow_nan=False),
        st.just(_Pin.PIN),
        *[st.just(n) for s in secrets for n in _as_numbers(s)],
    )


def _walked(secrets: list[str]) -> st.SearchStrategy[Any]:
    texts = _texts(secrets)
    scalars = st.one_of(
        st.none(), st.booleans(), texts, _numbers(secrets), st.just(_Colour.RED), st.just(_OPAQUE)
    )
    keys = st.one_of(
        texts,
        st.sampled_from(
            ["api_key", "token", "Authorization", "max_tokens", "cmd", OPENAI_LIKE, REDACTED]
        ),
        st.sampled_from(["sk-Zz9" + "a" * 20, _Colour.RED, 3, None, (1, "token")]),
        *[st.just(s) for s in secrets],
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.lists(inner, max_size=3).map(tuple),
            st.dictionaries(keys, inner, max_size=5),
        ),
        max_leaves=16,
    )


@st.composite
def _walk_case(draw: st.DrawFn) -> tuple[list[str], Any]:
    secrets = draw(_SECRETS_OR_DIGITS)
    return secrets, draw(_walked(secrets))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_walk_case(), st.booleans())
def test_redact_matches_the_reference_walk(case: tuple[list[str], Any], small: bool) -> None:
    secrets, data = case
    redactor = Redactor(secrets)
    ordered = tuple(
        sorted(
            {s for s in secrets if len(s) >= MIN_SECRET_LENGTH and s not in REDACTED},
            key=lambda s: (-len(s), s),
        )
    )
    assert redactor.secret_count == len(ordered)

    def text(value: str) -> str:
        return redaction._redact_text(value, ordered)

    expected = _typed(_reference_redact(text, ordered, data))
    # memories that start afresh every few entries, or never: the same results
    with mock.patch.object(redaction, "_SEEN_MAX", 3 if small else redaction._SEEN_MAX):
        assert _typed(redactor.redact(data)) == expected  # nothing remembered yet
        assert _typed(redactor.redact(data)) == expected  # all remembered
        assert _typed(redactor.redact([data, data])) == (list, [expected, expected])


def test_registering_a_secret_forgets_what_was_remembered() -> None:
    secret = "late-registered-Q9"
    data = {secret: [secret, 1], "k": f"x{secret}", "pin": 61234567890}
    r = Redactor()
    assert r.redact(data) == data
    assert r.redact(data) == data  # remembered: strings and key names
    assert r.add_secret(secret)
    assert r.add_secret("123456789")
    assert r.redact(data) == {REDACTED: [REDACTED, 1], "k": f"x{REDACTED}", "pin": REDACTED}


def test_a_secret_registered_while_others_redact_is_seen_by_later_calls() -> None:
    shared = Redactor()
    data = {"messages": [{"role": "user", "content": f"say {n}"} for n in range(50)]}
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            assert shared.redact(data)["messages"][0]["role"] == "user"

    shared.redact(data)
    workers = [threading.Thread(target=churn) for _ in range(3)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(0.05)
        assert shared.add_secret("say 7-long-enough")
        assert shared.add_secret("content-is-secret")
        time.sleep(0.05)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    late = {"content": "say 7-long-enough", "note": "content-is-secret", "role": "user"}
    assert shared.redact(late) == {"content": REDACTED, "note": REDACTED, "role": "user"}


def _request(n: int, tag: str) -> dict[str, Any]:
    return {
        "tool": "shell",
        "args": {f"k{i}": f"make test -j{i} && echo {tag}-{i} > out.txt" for i in range(n)},
        "meta": [f"note {tag}", {"c": f"d{tag}"}],
    }


def test_redaction_work_is_linear_and_remembered(
    operations: Callable[[Callable[[], object]], int],
) -> None:
    # speed is measured in bench/redaction_canonical.py; here: no blow-up with size,
    # and a request seen before costs a fraction of the first pass (the memory)
    redactor = Redactor.from_environ({"OPENAI_API_KEY": "abc-openai-0001"})
    small, large = _request(200, "small"), _request(800, "large")
    cold_small = operations(lambda: redactor.redact(small))
    cold_large = operations(lambda: redactor.redact(large))
    warm_large = operations(lambda: redactor.redact(large))
    assert cold_large < 5 * cold_small, f"{cold_small} -> {cold_large} operations (quadratic?)"
    assert warm_large < cold_large / 4, f"warm {warm_large} vs cold {cold_large} operations"


# -- the effect boundary -----------------------------------------------------------------

REGISTERED = "reg1stered-Secret-Qx7"
API_KEY = "plain-api-key-value-42"


def _no_secret(text: str) -> None:
    for secret in (OPENAI_LIKE, REGISTERED, API_KEY):
        assert secret not in text


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path


def test_an_agents_tool_call_is_recorded_redacted_and_replays_identically(
    ws: Path, nexus_home: Path
) -> None:
    """The tool gets the real arguments; the log, the export and replay see only redactions."""
    register_secret(REGISTERED)
    args = {
        "cmd": f"printf %s '{OPENAI_LIKE}' | sha256sum; printf %s '{REGISTERED}' | wc -c",
        "api_key": API_KEY,
    }
    shell = ShellTool()

    async def agent_fn(call: AgentCall, ctx: AgentContext) -> Any:
        tool_ctx = ToolContext("run", ctx.task, ctx.attempt, ws)

        async def run_shell() -> Any:
            return await shell(args, tool_ctx)

        result = await ctx.effect("tool", {"tool": "shell", "args": args}, run_shell)
        return {"stdout": result["stdout"]}

    agent = FunctionAgent(name="deployer", fn=agent_fn, capabilities=("deploy",))
    plan = Plan(
        name="secrets",
        tasks={"deploy": TaskSpec(id="deploy", capability="deploy", prompt="deploy it")},
        agents={"deployer": agent.spec()},
        workspace=str(ws),
    )
    nexus_home.mkdir()

    async def go() -> tuple[str, str, Any]:
        store = SQLiteStore.open(nexus_home / "nexus.db")
        try:
            engine = Engine(store, tools=builtin_tools(), function_agents=[agent])
            result = await asyncio.wait_for(engine.start(plan), 30)
            events = await store.load(result.run_id)
            report = await Engine(store, function_agents=[agent]).replay(result.run_id)
            log = json.dumps([e.to_dict() for e in events], ensure_ascii=False)
            return result.run_id, log, report
        finally:
            await store.close()

    run_id, log, report = asyncio.run(go())
    _no_secret(log)
    assert REDACTED in log
    # the tool got the real values: their hash and length, not those of "[redacted]"
    assert hashlib.sha256(OPENAI_LIKE.encode()).hexdigest() in log
    assert f"{len(REGISTERED)}\\n" in log
    assert report.identical, report.first_divergence
    assert report.effects_served == 1

    exported = CliRunner().invoke(app, ["export", run_id, "--json"])
    assert exported.exit_code == 0, exported.output
    _no_secret(exported.stdout)
    effect = next(
        e for e in json.loads(exported.stdout)["events"] if e["type"] == "effect.recorded"
    )
    assert effect["data"]["request"]["args"]["api_key"] == REDACTED


def test_a_tool_tasks_effect_request_is_redacted_and_replays(ws: Path, tmp_path: Path) -> None:
    """A workflow's own arguments are in its plan too; the effect record holds none."""
    plan = Plan(
        name="t",
        tasks={
            "a": TaskSpec(
                id="a", tool="noop", args={"cmd": f"echo {OPENAI_LIKE}", "api_key": API_KEY}
            )
        },
        workspace=str(ws),
    )

    async def go() -> tuple[list[Any], Any]:
        store = SQLiteStore.open(tmp_path / "n.db")
        try:
            result = await asyncio.wait_for(Engine(store).start(plan), 30)
            events = await store.load(result.run_id)
            return events, await Engine(store).replay(result.run_id)
        finally:
            await store.close()

    events, report = asyncio.run(go())
    effect = next(e for e in events if e.type is EventType.EFFECT_RECORDED)
    assert effect.data["request"] == {
        "tool": "noop",
        "args": {"cmd": "echo [redacted]", "api_key": REDACTED},
    }
    # noop returns its arguments; what it returns is recorded (and handed on) redacted too
    assert effect.data["response"] == {"cmd": "echo [redacted]", "api_key": REDACTED}
    assert report.identical, report.first_divergence


# -- rule 4: personal data ------------------------------------------------------------

PII = Redactor(pii=True)


def _luhn_complete(body: str) -> str:
    """``body`` and the check digit that makes it pass the Luhn check."""
    return next(body + d for d in "0123456789" if redaction.luhn_valid(body + d))


def _grouped(digits: str, sep: str) -> str:
    return sep.join(digits[i : i + 4] for i in range(0, len(digits), 4)) if sep else digits


_AROUND = st.text(alphabet="abcdefghij XYZ,.;:!?()é✓\n", max_size=20)


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet="0123456789", min_size=12, max_size=18),
    st.sampled_from(["", " ", "-"]),
    _AROUND,
    _AROUND,
)
def test_luhn_valid_card_numbers_are_redacted(body: str, sep: str, before: str, after: str) -> None:
    number = _luhn_complete(body)
    out = PII.redact_text(f"{before} {_grouped(number, sep)} {after}")
    assert number not in out.replace(" ", "").replace("-", "")
    assert "[card]" in out
    assert Redactor().redact_text(number) == number  # only when asked


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet="0123456789", min_size=13, max_size=19).filter(
        lambda d: not redaction.luhn_valid(d)
    ),
    st.sampled_from(["", " ", "-"]),
    _AROUND,
)
def test_digit_runs_failing_luhn_are_kept(digits: str, sep: str, around: str) -> None:
    text = f"{around} {_grouped(digits, sep)} {around}"
    assert PII.redact_text(text) == text


_LOCAL = st.text(alphabet="abcxyz0189._%+-", min_size=1, max_size=20)
_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
_EMAIL = st.builds(
    lambda local, labels, tld: f"{local}@{'.'.join(labels)}.{tld}",
    _LOCAL,
    st.lists(_LABEL, min_size=1, max_size=3),
    st.from_regex(r"[a-z]{2,6}", fullmatch=True),
)


@settings(max_examples=300, deadline=None)
@given(_EMAIL, st.text(max_size=30), st.text(max_size=30))
def test_email_addresses_in_any_text_are_redacted(email: str, before: str, after: str) -> None:
    out = PII.redact_text(f"{before} {email} {after}")
    assert email not in out
    assert "[email]" in out
    assert PII.redact_text(out) == out  # idempotent


@pytest.mark.parametrize(
    "phone", ["+1 415 555 2671", "+44 (20) 7946-0958", "+4915112345678", "(555) 123-4567",
              "555-123-4567", "555.123.4567"]
)  # fmt: skip
def test_phone_numbers_are_redacted(phone: str) -> None:
    assert PII.redact_text(f"call {phone} now") == "call [phone] now"


@pytest.mark.parametrize(
    "text",
    ["released 2024-05-01", "v1.2.3", "192.168.1.10", "at 12:30", "+1 point", "n=1234567",
     "issue #4411", "sha 4f3c2a1b9e"],
)  # fmt: skip
def test_ordinary_numbers_are_not_personal_data(text: str) -> None:
    assert PII.redact_text(text) == text


def test_personal_data_in_json_and_keys() -> None:
    data = {"to": "ann@example.org", "card": "4111 1111 1111 1111", "n": 4111111111111111}
    assert PII.redact(data) == {"to": "[email]", "card": "[card]", "n": 4111111111111111}
