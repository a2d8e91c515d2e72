"""Secret redaction: what is recorded never holds a secret that Nexus could recognise.

Every effect's request is written to the event log, exported, shown by
``nexus inspect``. A :class:`Redactor` replaces secrets in such JSON-like data
with :data:`REDACTED` before it is recorded. It finds them three ways:

1. **By key name.** The value of a mapping key that names a secret --
   ``api_key``, ``x-api-key``, ``token``, ``access_token``, ``secret``,
   ``client_secret``, ``password``, ``passwd``, ``authorization``, ``cookie``,
   ``set-cookie``, ``private_key``, ``access_key``, ``credentials``... compared
   case-insensitively with ``-``, ``_`` and ``.`` ignored -- at any depth, is
   replaced whole (a string, a number, a list or a table alike). ``null``,
   booleans and empty strings are kept: they hide nothing and help debugging.
   Names that merely contain such a word are not secret (``max_tokens``,
   ``token_count``, ``secretary``).
2. **By shape, inside any string** (keys included): ``Authorization: Bearer
   ...`` and ``Bearer ...`` credentials; ``name=value`` / ``name: value``
   assignments whose name ends in a secret word (``OPENAI_API_KEY=...``,
   ``?access_token=...``, ``"password": "..."`` inside JSON text); the password
   of a URL (``https://user:[redacted]@host``); and well-known token formats --
   OpenAI/Anthropic ``sk-...``, GitHub ``ghp_``/``gho_``/``ghu_``/``ghs_``/
   ``ghr_``/``github_pat_``, Slack ``xox[abpors]-``, AWS ``AKIA``/``ASIA`` key
   ids, Stripe ``sk_live_``/``rk_test_``..., Google ``AIza...``, Hugging Face
   ``hf_...``, JSON Web Tokens, and PEM ``-----BEGIN ... PRIVATE KEY-----``
   blocks. Only the secret part is replaced; the name, scheme or user stay.
3. **By value.** Secrets registered up front -- by default the values of
   environment variables whose name ends in ``_KEY``, ``_TOKEN``,
   ``_SECRET``, ``_PASSWORD`` or ``_PASSWD`` (``OPENAI_API_KEY``,
   ``ANTHROPIC_API_KEY``, ``GITHUB_TOKEN``...), at least
   :data:`MIN_SECRET_LENGTH` characters long -- are replaced wherever they
   occur as a substring, and inside numbers too. A run's secret inputs are
   registered this way (see :func:`is_secret_name` and
   :mod:`nexus.engine.secret_inputs`), down to :data:`MIN_INPUT_SECRET_LENGTH`.
4. **Personal data** (only with ``pii=True``, ``[redaction] pii = true``):
   e-mail addresses become ``[email]``; card numbers -- a run of 13 to 19
   digits, single spaces or dashes allowed between them, not touching a letter,
   digit, ``_`` or ``+``, that passes the Luhn check -- become ``[card]``; phone
   numbers -- ``+`` and 8 to 15 digits (spaces, dots, dashes, parentheses
   between them), or the ``(555) 123-4567`` / ``555-123-4567`` shape --
   become ``[phone]``. A longer digit run is not a card, dates and versions
   are not phones; other personal data (names, addresses) is not recognised.

Rules 1 and 2 can be turned off (``builtin=False``): a run applies only its
own secret values (and personal data, when asked) to every event it records,
so the events of runs without secret inputs keep their bytes.

Guarantees (the tests check them with Hypothesis):

* **Deterministic**: the output depends only on the input and the registered
  secrets, so a replay that redacts the same request gets the same record.
* **Idempotent**: redacting a redacted value changes nothing.
* **Complete for registered secrets**: no registered secret is left as a
  substring of any string of the output. Rule 2 replaces text with
  ``[redacted]`` and can, in contrived inputs, create a new match across the
  replacement; each string is therefore redacted again until nothing changes
  (in practice the second pass is a check that finds nothing), and a string
  still changing after :data:`_MAX_PASSES` passes is replaced whole.
* **Non-secret data passes unchanged**: equal, key for key.

It is a safety net, not a vault: a secret of a shape it does not know, under
a key that does not say so and never registered, passes through; so do
secrets that were split, encoded (base64) or transformed. Secrets should not
be written into workflow files at all (they are recorded in the plan).

Cost (2 vCPU VM, ``docs/sandbox.md`` "Secret redaction"): about 1 µs per short
string without secrets, 40-60 MB/s on long text, ~8 MB/s on text dense with
trigger words (``token``, ``secret``...). Strings and key names already seen
are remembered: an agent's 10th-step model request (20 messages, 236 nodes)
is redacted again in ~17 µs (``bench/redaction_canonical.py``).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "MIN_INPUT_SECRET_LENGTH",
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "Redactor",
    "default_redactor",
    "is_secret_key",
    "is_secret_name",
    "luhn_valid",
    "redact",
    "redact_values",
    "register_secret",
    "secrets_scope",
]

#: What a secret is replaced with.
REDACTED: Final = "[redacted]"
#: Registered secrets shorter than this are ignored: short values ("true",
#: "admin") occur everywhere, and redacting them would shred ordinary data.
MIN_SECRET_LENGTH: Final = 8
#: A secret *input* (declared ``secret: true`` or named like one) is redacted
#: down to this length: the workflow says it is a secret, so it is trusted more
#: than a guess from the environment. Shorter non-empty values are refused.
MIN_INPUT_SECRET_LENGTH: Final = 4
_MAX_PASSES = 4
#: Redacted strings (and key names) remembered per redactor before the memory starts afresh.
_SEEN_MAX = 8192

# -- rule 1: key names ----------------------------------------------------------------

_KEY_NOISE = re.compile(r"[-_.\s]")
_SECRET_KEY_SUFFIXES = (
    "apikey",
    "accesskey",
    "secretkey",
    "privatekey",
    "signingkey",
    "encryptionkey",
    "masterkey",
    "token",
    "secret",
    "password",
    "passwd",
    "passphrase",
    "authorization",
    "cookie",
    "credential",
    "credentials",
)
_SECRET_KEYS_EXACT = frozenset({"auth", "pwd", "sessionid", "sessionkey"})


def is_secret_key(name: str) -> bool:
    """True when a mapping key's name says its value is a secret.

    Example:
        >>> is_secret_key("X-Api-Key"), is_secret_key("max_tokens")
        (True, False)
    """
    norm = _KEY_NOISE.sub("", name.lower())
    return norm in _SECRET_KEYS_EXACT or norm.endswith(_SECRET_KEY_SUFFIXES)


_SECRET_NAMES_EXACT = frozenset({"pass", "pwd", "passwd", "auth", "apikey"})
#: ``*_KEY``, ``*-pass``, ``db.pwd``: the last word of a name with separators
_SECRET_LAST_WORD = re.compile(r"[-_.](?:key|pass|pwd)\Z", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """True when a workflow input's name says it holds a secret.

    The rule (case-insensitive; ``-``, ``_``, ``.`` and spaces ignored unless
    said otherwise): the name is ``pass``, ``pwd``, ``passwd``, ``auth`` or
    ``apikey``; or it ends with ``password``, ``passwd``, ``passphrase``,
    ``secret``, ``token``, ``apikey``, ``accesskey``, ``secretkey``,
    ``privatekey``, ``signingkey``, ``encryptionkey``, ``masterkey``,
    ``credential(s)``, ``authorization`` or ``cookie`` (as :func:`is_secret_key`:
    so ``PGPASSWORD``, ``GITHUB_TOKEN``, ``client_secret``, ``api-key``); or
    its last separated word is ``key``, ``pass`` or ``pwd`` (``SSH_KEY``,
    ``db_pass``). Not secret: ``key``, ``max_tokens``, ``token_count``,
    ``author``, ``keyboard``, ``compass``.

    Example:
        >>> is_secret_name("PGPASSWORD"), is_secret_name("SIGNING_KEY"), is_secret_name("keys")
        (True, True, False)
    """
    norm = _KEY_NOISE.sub("", name.lower())
    return (
        norm in _SECRET_NAMES_EXACT
        or is_secret_key(name)
        or _SECRET_LAST_WORD.search(name) is not None
    )


# -- rule 2: shapes inside strings --------------------------------------------------------

# Each shape is found in two steps, for speed: the literal text where a match
# can start (a "trigger", lower case) is located with ``str.find`` in the
# lower-cased string, and only there is the pattern tried, anchored
# (``Pattern.match(text, pos)``; look-behinds still see the text before
# ``pos``). A single regex of alternatives ran at 1 MB/s; this runs at
# 50-100 MB/s on text without triggers. A pattern's ``head`` group is
# kept in front of ``[redacted]``; a value that is already ``[...]`` matches
# whole, so redacting again changes nothing.


@dataclass(frozen=True, slots=True)
class _Shape:
    name: str
    triggers: tuple[str, ...]
    #: every position where a trigger starts (a look-ahead, so overlapping ones too)
    starts: re.Pattern[str]
    pattern: re.Pattern[str]


def _shape(name: str, triggers: tuple[str, ...], pattern: str) -> _Shape:
    starts = re.compile("(?=" + "|".join(map(re.escape, triggers)) + ")")
    return _Shape(name, triggers, starts, re.compile(pattern))


_SECRET_VALUE = r"(?:\[[^\]\n]{0,200}\]|\"[^\"\n]*\"|'[^'\n]*'|[^\s&;,\"'}\]]+)"
_SHAPES = (
    # PEM private keys, to the END line (or to the end of the text)
    _shape(
        "pem",
        ("-----begin",),
        r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY-----"
        r"(?s:.*?-----END[A-Z0-9 ]{0,40}PRIVATE KEY-----|.*)",
    ),
    # Authorization: Bearer xyz / authorization=xyz (also Proxy-Authorization)
    _shape(
        "auth",
        ("authorization",),
        r"(?P<head>(?<![A-Za-z0-9])(?i:authorization)[\"']?\s*[:=]\s*[\"']?"
        r"(?:(?i:bearer|basic|token|digest|negotiate|apikey)\s+)?)"
        r"(?:\[[^\]\n]{0,200}\]|[^\s\"',;]+)",
    ),
    # Bearer xyz (8+ token characters)
    _shape(
        "bearer",
        ("bearer",),
        r"(?P<head>(?<![A-Za-z0-9])(?i:bearer)\s+)[A-Za-z0-9._~+/=-]{8,}",
    ),
    # name=value, name: value, "name": "value" -- the name ends in a secret word
    _shape(
        "assignment",
        ("api", "access", "secret", "private", "token", "passw", "passphrase", "credential"),
        r"(?P<head>(?i:api[_-]?key|access[_-]?key|secret(?:[_-]?key)?|private[_-]?key"
        r"|token|passw(?:or)?d|passphrase|credentials?)[\"']?\s*[:=]\s*)" + _SECRET_VALUE,
    ),
    # scheme://user:password@host
    _shape("url", ("://",), r"(?P<head>://[^/\s:@]+:)[^/\s@]+(?=@)"),
    # OpenAI / Anthropic keys: sk-... with 20+ characters, at least one digit
    _shape(
        "openai",
        ("sk-",),
        r"(?<![A-Za-z0-9_-])sk-(?=[A-Za-z0-9_-]{20})(?=[A-Za-z_-]*[0-9])[A-Za-z0-9_-]+",
    ),
    _shape(
        "github",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})",
    ),
    _shape("slack", ("xox",), r"(?<![A-Za-z0-9])xox[abpors]-[A-Za-z0-9-]{10,}"),
    _shape("aws", ("akia", "asia"), r"(?<![A-Z0-9])A(?:KIA|SIA)[A-Z0-9]{16}(?![A-Z0-9])"),
    _shape("stripe", ("sk_", "rk_"), r"(?<![A-Za-z0-9])[rs]k_(?:live|test)_[A-Za-z0-9]{16,}"),
    _shape("google", ("aiza",), r"(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}"),
    _shape("huggingface", ("hf_",), r"(?<![A-Za-z0-9_])hf_[A-Za-z0-9]{30,}"),
    _shape(
        "jwt",
        ("eyj",),
        r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
    ),
)


def _lower_same_length(text: str) -> str:
    """``text`` lower-cased, index for index (a character whose lower case is longer stays)."""
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


def _occurrences(haystack: str, needles: Iterable[str]) -> list[tuple[int, int]]:
    """``(start, -length)`` of every occurrence of every needle, sorted."""
    found = []
    for needle in needles:
        i = haystack.find(needle)
        while i >= 0:
            found.append((i, -len(needle)))
            i = haystack.find(needle, i + 1)
    found.sort()
    return found


_ANY_TRIGGER = re.compile("|".join(re.escape(t) for shape in _SHAPES for t in shape.triggers))


def _redact_shapes(text: str) -> str:
    low = _lower_same_length(text)
    if _ANY_TRIGGER.search(low) is None:
        return text  # most strings: one lower() and one search
    for shape in _SHAPES:
        if not any(t in low for t in shape.triggers):
            continue
        pieces: list[str] = []
        done = 0
        for found in shape.starts.finditer(low):
            start = found.start()
            if start < done:
                continue  # inside the previous match
            match = shape.pattern.match(text, start)
            if match is None:
                continue
            pieces += [text[done:start], (match.groupdict().get("head") or "") + REDACTED]
            done = match.end()
        if pieces:
            text = "".join([*pieces, text[done:]])
            low = _lower_same_length(text)
    return text


# -- rule 4: personal data -------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![A-Za-z0-9-])"
)
#: digits with single spaces or dashes between them, touching no word character
_DIGIT_RUN = re.compile(r"(?<![\w+])\d(?:[ -]?\d){12,}(?![\w])")
_PHONE = re.compile(
    # +CC and 8-15 digits in groups (the digit count is checked after the match)
    r"(?<![\w+])\+\d[\d .()-]{6,22}\d(?![\w])"
    # (555) 123-4567, 555-123-4567, 555.123.4567, 555 123 4567
    r"|(?<![\w.+-])(?:\(\d{3}\)\s?|\d{3}[-. ])\d{3}[-. ]\d{4}(?![\w]|[-.]\d)"
)
_PII_TRIGGER = re.compile(r"@|\d{3}")


def luhn_valid(digits: str) -> bool:
    """Whether a string of ASCII digits passes the Luhn check (card numbers do).

    Example:
        >>> luhn_valid("4111111111111111"), luhn_valid("4111111111111112")
        (True, False)
    """
    total = 0
    for i, char in enumerate(reversed(digits)):
        n = ord(char) - 48
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = match.group().replace(" ", "").replace("-", "")
    if 13 <= len(digits) <= 19 and digits.isascii() and luhn_valid(digits):
        return "[card]"
    return match.group()


def _phone(match: re.Match[str]) -> str:
    text = match.group()
    if text.startswith("+"):
        count = sum(c.isdigit() for c in text)
        if not 8 <= count <= 15 or "  " in text:
            return text
    return "[phone]"


def _redact_pii(text: str) -> str:
    if _PII_TRIGGER.search(text) is None:
        return text
    if "@" in text:
        text = _EMAIL.sub("[email]", text)
    text = _DIGIT_RUN.sub(_card, text)
    return _PHONE.sub(_phone, text)


# -- rule 3: registered values ------------------------------------------------------------

#: Environment variables whose values :meth:`Redactor.from_environ` registers.
_SECRET_ENV = re.compile(r"(?:^|_)(?:KEY|TOKEN|SECRET|PASSWORD|PASSWD)\Z", re.IGNORECASE)
#: Every character ``str()`` of an ``int`` or a ``float`` can hold ("-1.5e+16", "inf", "nan").
_NUMBER_CHARS = frozenset("0123456789+-.aefin")


class Redactor:
    """Replaces secrets in JSON-like data (see the module docstring for the rules).

    Args:
        secrets: values to redact wherever they occur. Values shorter than
            :data:`MIN_SECRET_LENGTH`, or that occur in ``[redacted]`` itself,
            are ignored.
        builtin: apply rules 1 and 2 (key names and shapes); False leaves
            only the registered values (and personal data).
        pii: apply rule 4 (e-mail addresses, card and phone numbers).
        numbers: look for registered secrets inside numbers too.

    Example:
        >>> r = Redactor(["hunter2-hunter2"])
        >>> r.redact({"cmd": "login hunter2-hunter2", "api_key": "abc", "n": 1})
        {'cmd': 'login [redacted]', 'api_key': '[redacted]', 'n': 1}
    """

    def __init__(
        self,
        secrets: Iterable[str] = (),
        *,
        builtin: bool = True,
        pii: bool = False,
        numbers: bool = True,
    ) -> None:
        self._lock = threading.Lock()
        self._options = _Options(builtin=builtin, pii=pii, numbers=numbers)
        self._memory = _Memory((), self._options)
        self._twin: tuple[_Memory, Redactor] | None = None
        for secret in secrets:
            self.add_secret(secret)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Redactor:
        """A redactor knowing the secrets of ``environ`` (``os.environ`` by default).

        Registered: the values of variables named ``*_KEY``, ``*_TOKEN``,
        ``*_SECRET``, ``*_PASSWORD``, ``*_PASSWD`` (so ``OPENAI_API_KEY``,
        ``ANTHROPIC_API_KEY``, ``AWS_SECRET_ACCESS_KEY``...), when long enough.
        """
        env = os.environ if environ is None else environ
        return cls(value for name, value in env.items() if _SECRET_ENV.search(name))

    @property
    def secret_count(self) -> int:
        """How many secret values are registered."""
        return len(self._memory.secrets)

    @property
    def pii(self) -> bool:
        """Whether personal data is redacted too (rule 4)."""
        return self._options.pii

    def add_secret(self, value: str, *, min_length: int = MIN_SECRET_LENGTH) -> bool:
        """Register ``value``; False when it is ignored (too short, or part of ``[redacted]``).

        ``min_length`` (at least 1) lowers the bar for values known to be
        secrets (a run's secret inputs).
        """
        if len(value) < max(1, min_length) or value in REDACTED:
            return False
        with self._lock:
            secrets = self._memory.secrets
            if value not in secrets:
                # a new memory, swapped in whole: a redaction running in another
                # thread uses the old secrets and what it remembered with them, or
                # the new ones -- never a mix
                ordered = tuple(sorted({*secrets, value}, key=lambda s: (-len(s), s)))
                self._memory = _Memory(ordered, self._options)
        return True

    def values_only(self) -> Redactor:
        """A redactor that replaces only the values registered here now (rule 3).

        For records that must not change with the built-in rules (cassettes
        recorded before secrets were redacted in them still match). Rebuilt
        when a secret is registered here.
        """
        memory = self._memory
        twin = self._twin
        if twin is None or twin[0] is not memory:
            redactor = Redactor(builtin=False)
            redactor._memory = _Memory(memory.secrets, redactor._options)
            twin = self._twin = (memory, redactor)
        return twin[1]

    def redact_text(self, text: str) -> str:
        """``text`` with every secret it holds replaced by ``[redacted]``.

        Results are remembered (a conversation is recorded again at every step
        of an agent's loop, so the same strings come back); registering a
        secret forgets them.
        """
        return self._memory.text(text)

    def redact(self, value: Any) -> Any:
        """A copy of ``value`` (JSON-like: dicts, lists, tuples, scalars) with secrets replaced.

        Dict keys are redacted like any string; if two keys become equal, the
        first one's entry is kept.
        """
        return self._memory.value(value)


@dataclass(frozen=True, slots=True)
class _Options:
    builtin: bool = True
    pii: bool = False
    numbers: bool = True


class _Memory:
    """The redaction of one set of registered secrets, and what it remembers.

    The walk over a value is the hot path of recording an effect (a model
    call's request holds a few hundred strings and keys, the same at every
    step of an agent's loop), so it is written for CPython's speed: closures
    over local variables instead of attribute look-ups, exact-type tests
    before ``isinstance``, strings looked up inline in the memory of redacted
    strings, and each key name's fate -- its redacted text and whether it
    names a secret -- remembered as one entry. Both memories start afresh
    after :data:`_SEEN_MAX` entries.
    """

    __slots__ = ("secrets", "text", "value")

    def __init__(self, secrets: tuple[str, ...], options: _Options) -> None:
        #: registered secrets, longest first (a secret containing another is replaced whole)
        self.secrets = secrets
        self.text, self.value = _walkers(secrets, options)


def _walkers(
    secrets: tuple[str, ...], options: _Options
) -> tuple[Callable[[str], str], Callable[[Any], Any]]:
    """``(redact_text, redact)`` for ``secrets``, each remembering what it did."""
    seen: dict[str, str] = {}
    # key name -> True: kept, not secret; False: kept, names a secret;
    # (redacted name, names a secret) when redaction changes the name
    keys: dict[Any, bool | tuple[str, bool]] = {}
    seen_get = seen.get
    keys_get = keys.get
    # only these can occur in str() of an int or a float
    in_numbers = tuple(
        secret for secret in secrets if options.numbers and _NUMBER_CHARS.issuperset(secret)
    )
    number_secrets = secrets if options.numbers else ()
    builtin, pii = options.builtin, options.pii
    is_secret = is_secret_key if builtin else _never

    def text(value: str) -> str:
        known = seen_get(value)
        if known is None:
            known = _redact_text(value, secrets, builtin, pii)
            if len(seen) >= _SEEN_MAX:
                seen.clear()
            seen[value] = known
        return known

    def key(name: str) -> bool | tuple[str, bool]:
        fate = keys_get(name)
        if fate is None:
            redacted, secret = text(name), is_secret(name)
            fate = (not secret) if redacted == name else (redacted, secret)
            if len(keys) >= _SEEN_MAX:
                keys.clear()
            keys[name] = fate
        return fate

    def mapping(value: Any) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        items = iter(value.items())
        for name, item in items:
            fate = keys_get(name)
            if fate is None and isinstance(name, str):
                fate = key(name)
            if fate is True:
                kind = type(item)
                if kind is str:
                    out[name] = seen_get(item) or text(item)
                elif kind is dict:
                    out[name] = mapping(item)
                elif kind is list:
                    out[name] = sequence(item)
                elif item is None or kind is bool or (kind is int and not in_numbers):
                    out[name] = item
                else:
                    out[name] = walk(item)
            elif fate is False:
                out[name] = REDACTED if _holds_something(item) else walk(item)
            else:
                # a name redaction changes, or not a string: from here on two
                # names may become one, and the first one's entry is kept
                first_wins(out, name, item)
                for name, item in items:
                    first_wins(out, name, item)
        return out

    def first_wins(out: dict[Any, Any], name: Any, item: Any) -> None:
        if not isinstance(name, str):
            out.setdefault(name, walk(item))
            return
        fate = key(name)
        new, secret = (name, fate is False) if isinstance(fate, bool) else fate
        out.setdefault(new, REDACTED if secret and _holds_something(item) else walk(item))

    def sequence(value: Any) -> list[Any]:
        out: list[Any] = []
        append = out.append
        for item in value:
            kind = type(item)
            if kind is str:
                append(seen_get(item) or text(item))
            elif kind is dict:
                append(mapping(item))
            else:
                append(walk(item))
        return out

    def walk(value: Any) -> Any:
        kind = type(value)
        if kind is str:
            return text(value)
        if kind is dict:
            return mapping(value)
        if kind is list:
            return sequence(value)
        if kind is tuple:
            return tuple(sequence(value))
        if value is None or kind is bool:
            return value
        if kind is int or kind is float:
            return _number(value, in_numbers) if in_numbers else value
        # subclasses of the built-in types (a StrEnum, an OrderedDict...)
        if isinstance(value, str):
            return text(value)
        if isinstance(value, dict):
            return mapping(value)
        if isinstance(value, list):
            return sequence(value)
        if isinstance(value, tuple):
            return tuple(sequence(value))
        if isinstance(value, int | float) and not isinstance(value, bool) and number_secrets:
            return _number(value, number_secrets)
        return value

    return text, walk


def _never(name: str) -> bool:
    return False


def _redact_text(
    text: str, secrets: tuple[str, ...], builtin: bool = True, pii: bool = False
) -> str:
    for _ in range(_MAX_PASSES):
        # registered values first: a shape could otherwise cut one in two and
        # leave a piece of it behind
        out = text
        if secrets and any(secret in out for secret in secrets):
            out = _replace_secrets(out, secrets)
        if builtin:
            out = _redact_shapes(out)
        if pii:
            out = _redact_pii(out)
        if out == text:
            return text
        text = out
    return REDACTED  # still changing: contrived input; give nothing away


def _number(value: Any, secrets: tuple[str, ...]) -> Any:
    digits = str(value)
    return REDACTED if any(secret in digits for secret in secrets) else value


def _replace_secrets(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with each occurrence of ``secrets`` replaced: leftmost first, then longest."""
    pieces: list[str] = []
    done = 0
    for start, negative_length in _occurrences(text, secrets):
        if start >= done:
            pieces += [text[done:start], REDACTED]
            done = start - negative_length
    return "".join([*pieces, text[done:]]) if pieces else text


def _holds_something(value: Any) -> bool:
    return not (value is None or isinstance(value, bool) or value == "")


# -- the process's default ---------------------------------------------------------------

_default: Redactor | None = None
_default_lock = threading.Lock()


def default_redactor() -> Redactor:
    """The process-wide redactor: built from the environment on first use.

    More secrets (keys read from files, say) are added with :func:`register_secret`.
    """
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Redactor.from_environ()
    return _default


def register_secret(value: str) -> bool:
    """Register ``value`` with the default redactor; False when it is ignored."""
    return default_redactor().add_secret(value)


def redact(value: Any) -> Any:
    """``value`` redacted by the default redactor (what the effect boundary records)."""
    return default_redactor().redact(value)


# -- a run's own secrets -----------------------------------------------------------------

#: The secrets of the run driven in this context (and the tasks it starts), if any.
_scoped: ContextVar[Redactor | None] = ContextVar("nexus_run_secrets", default=None)


@contextmanager
def secrets_scope(redactor: Redactor | None) -> Iterator[None]:
    """Make ``redactor``'s registered values secrets for :func:`redact_values` in this context.

    A run's secret inputs are secrets *of that run*: registering them with the
    process's :func:`default_redactor` would redact them from every other
    run's records in a long-lived process (a server, the Python API), where
    the same text may be ordinary data, and keep them in memory for good. The
    engine drives each run inside this scope instead; asyncio tasks and
    threads (``asyncio.to_thread``) started in it inherit it, other runs do
    not see it, and leaving it releases the values.
    """
    token = _scoped.set(redactor)
    try:
        yield
    finally:
        _scoped.reset(token)


def redact_values(value: Any) -> Any:
    """``value`` with registered secrets replaced: the process's, and this context's run's.

    Values only (rule 3), for records that must not change with the built-in
    rules (cassettes).
    """
    value = default_redactor().values_only().redact(value)
    scoped = _scoped.get()
    return value if scoped is None else scoped.values_only().redact(value)
