"""Secret workflow inputs: never recorded, only a salted hash of them.

A plan's secret inputs (:attr:`Plan.secret_inputs`: declared ``secret: true``,
or named like a secret, see :func:`nexus.redaction.is_secret_name`) hold their
real values only in memory. ``run.started`` records, instead of each value,
``"[redacted]"`` in ``inputs`` and ``plan.inputs``, and::

    "secrets": {"kdf": "scrypt", "n": 16384, "r": 8, "p": 1,
                "salt": "<32 hex digits, random per run>",
                "digests": {"password": "<scrypt(value, salt + name), hex>"}}

**Why scrypt.** The salt is in the log (a replay on another machine must be
able to check a value), so whoever reads the log can try passwords against
the digest; scrypt with these parameters costs ~35 ms and 16 MiB per guess
(HMAC-SHA256: ~1.4 µs, 25,000 times cheaper), once per secret input at
start, resume and replay. The input's name is part of the salt, so two
inputs with the same value do not show it.

**Where the values come back from.** At start, from the plan (``-i``, the
file's default) or else the environment variable the workflow names
(``env: DB_PASSWORD``). At resume and replay -- the log has no value -- from
the caller (``nexus resume RUN -i password=...``) or that environment
variable; a resumed value must match the recorded digest. A replay without
the value replays with ``"[redacted]"`` in its place (what the record holds
anyway); a replay given a different value reports a divergence.

**Redaction.** :func:`run_redactor` is applied to every event the run
records (values only, plus personal data with ``[redaction] pii``) and to its
effect records, and the engine drives the run inside
:func:`nexus.redaction.secrets_scope`, so cassettes recording its model calls
know the values too. The values are the run's alone: they are never
registered with the process's default redactor, where they would be redacted
from other runs' records (in which the same text may be ordinary data) and
stay in memory after the run ends.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from nexus.domain.errors import IntegrityError, UserError
from nexus.domain.plan import SECRET_PLACEHOLDER
from nexus.redaction import MIN_INPUT_SECRET_LENGTH, REDACTED, Redactor

__all__ = [
    "SCRYPT_N",
    "SecretDigests",
    "check_secret_value",
    "resolve_secrets",
    "run_redactor",
    "sealed_inputs",
]

#: scrypt's cost parameters (the scrypt paper's interactive setting): ~35 ms, 16 MiB.
SCRYPT_N: Final = 2**14
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
_SALT_BYTES = 16
_MAXMEM = 64 * 1024 * 1024


def _digest(value: str, salt: bytes, name: str, n: int, r: int, p: int) -> str:
    key = hashlib.scrypt(
        value.encode("utf-8"),
        salt=salt + b"\0" + name.encode("utf-8"),
        n=n,
        r=r,
        p=p,
        maxmem=_MAXMEM,
        dklen=32,
    )
    return key.hex()


@dataclass(frozen=True, slots=True)
class SecretDigests:
    """The salted hashes of a run's secret inputs, as ``run.started`` records them."""

    salt: bytes
    digests: dict[str, str] = field(default_factory=dict)
    n: int = SCRYPT_N
    r: int = SCRYPT_R
    p: int = SCRYPT_P

    @classmethod
    def create(cls, values: Mapping[str, str], salt: bytes | None = None) -> SecretDigests:
        """Hash ``values`` under a fresh random salt (or ``salt``, for tests)."""
        salt = os.urandom(_SALT_BYTES) if salt is None else salt
        digests = {
            name: _digest(value, salt, name, SCRYPT_N, SCRYPT_R, SCRYPT_P)
            for name, value in sorted(values.items())
        }
        return cls(salt, digests)

    def matches(self, name: str, value: str) -> bool:
        """Whether ``value`` is the one input ``name`` was recorded with."""
        recorded = self.digests.get(name)
        if recorded is None:
            return False
        actual = _digest(value, self.salt, name, self.n, self.r, self.p)
        return hmac.compare_digest(actual, recorded)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kdf": "scrypt",
            "n": self.n,
            "r": self.r,
            "p": self.p,
            "salt": self.salt.hex(),
            "digests": dict(self.digests),
        }

    @classmethod
    def from_dict(cls, data: Any, run_id: str) -> SecretDigests:
        """Read ``run.started``'s ``secrets``; IntegrityError when it is malformed."""
        try:
            if data["kdf"] != "scrypt":
                raise ValueError(f"unknown kdf {data['kdf']!r}")
            digests = data["digests"]
            if not isinstance(digests, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in digests.items()
            ):
                raise ValueError("digests must map names to hex digests")
            return cls(
                salt=bytes.fromhex(data["salt"]),
                digests=dict(digests),
                n=int(data["n"]),
                r=int(data["r"]),
                p=int(data["p"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(
                f"run {run_id}: run.started has a malformed 'secrets' record ({exc})"
            ) from None


def check_secret_value(name: str, value: Any) -> str:
    """The text of secret input ``name``'s value, or a UserError saying why it cannot be one.

    Strings are kept; integers become their digits (``-i pin=12345678`` is
    read as JSON). The message never holds the value.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        kind = "null" if value is None else type(value).__name__
        raise UserError(f"secret input '{name}' must be a string, not {kind}")
    if value and len(value) < MIN_INPUT_SECRET_LENGTH:
        raise UserError(
            f"secret input '{name}' is {len(value)} characters long: too short to be "
            f"recognised and redacted in what the run records (at least "
            f"{MIN_INPUT_SECRET_LENGTH}); if it is not a secret, declare it `secret: false`"
        )
    if value and value in REDACTED:
        raise UserError(
            f"secret input '{name}': its value is part of the text {REDACTED!r} that "
            "replaces secrets, so it could not be redacted; choose another"
        )
    return value


def _how_to_pass(name: str, env: str | None, command: str) -> str:
    where = f"pass it with `{command} -i {name}=...`"
    if env:
        return f"{where} or set the environment variable {env}"
    return f"{where}, or declare `env: VARIABLE` for it in the workflow"


def resolve_secrets(
    declared: Mapping[str, str | None],
    *,
    given: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    command: str = "nexus run FILE",
    run_id: str | None = None,
) -> dict[str, str]:
    """The value of every declared secret input: ``given`` first, then its environment variable.

    Args:
        declared: secret input name -> the environment variable the workflow
            names for it (or None).
        given: values the caller has (the plan's, ``-i``).
        environ: the environment (``os.environ`` by default).
        command: the command named in the error message.
        run_id: the run being resumed, for the error message.

    Raises:
        UserError: a secret input has no value, or an unusable one (the
            message names the input, never the value).
    """
    env = os.environ if environ is None else environ
    values: dict[str, str] = {}
    for name, variable in sorted(declared.items()):
        if name in given:
            value: Any = given[name]
        elif variable and variable in env:
            value = env[variable]
        else:
            what = f"run {run_id} needs" if run_id else "the run needs"
            raise UserError(
                f"{what} the value of secret input '{name}' (it is never recorded): "
                + _how_to_pass(name, variable, command)
            )
        values[name] = check_secret_value(name, value)
    return values


def sealed_inputs(inputs: Mapping[str, Any], secret: Iterable[str]) -> dict[str, Any]:
    """``inputs`` with each secret one's value replaced by ``"[redacted]"``."""
    hidden = set(secret)
    return {k: SECRET_PLACEHOLDER if k in hidden else v for k, v in inputs.items()}


def run_redactor(values: Iterable[str], *, pii: bool) -> Redactor | None:
    """What every event of a run passes through: its secret values, personal data when asked.

    None when there is nothing to redact (the run's events keep their bytes).
    """
    redactor = Redactor(builtin=False, pii=pii, numbers=False)
    for value in values:
        redactor.add_secret(value, min_length=MIN_INPUT_SECRET_LENGTH)
    return redactor if redactor.secret_count or pii else None
