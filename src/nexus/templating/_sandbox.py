"""The bounded Jinja2 sandbox that workflow templates compile and render in.

Jinja2's immutable sandbox stops a template reaching Python internals, but not
from asking for work: ``10 ** 10 ** 8``, ``'x' * 10 ** 9``, ``'%999999999s' %
1``, nested ``range`` loops, ``[[1] * 1000] * 1000 | tojson``. Workflow files
are untrusted input, so this environment bounds every way a template can make
work or memory:

* **numbers**: ``**`` is refused before it runs when the result would pass
  :data:`MAX_INT_BITS`; every integer a template makes is checked after;
* **sizes**: a string, list or mapping a template makes (counted deep: a list
  of a thousand references to one long string is long) holds at most
  :data:`MAX_SIZE` characters or items. Operations that amplify -- ``*``,
  ``+``, ``~``, ``%``, ``replace``, ``join``, ``center``, ``indent``,
  ``wordwrap``, ``batch``, ``slice``, ``sum`` and format widths -- are checked
  *before* they run; everything else is checked on its result;
* **output**: a render yields at most :data:`MAX_SIZE` characters;
* **work**: one render may spend :data:`WORK_LIMIT` units, where a loop
  iteration or a call costs :data:`STEP` and every character or item made or
  measured costs one. ``range`` is capped at :data:`MAX_RANGE` items;
* **time**: :data:`DEADLINE_S` seconds of wall time per render, checked at the
  same points, as the backstop for work the meter does not see (comparing two
  large values, say).

Why a meter and not a timer or a thread: templates are rendered by the
decider, whose decisions must come out byte for byte the same on replay, so
the outcome of a render must not depend on how fast the machine is. A work
meter is deterministic. A CPU-bound Python operation (one ``**`` on big
integers) cannot be interrupted by asyncio, nor a thread be killed, so the
only way to keep the event loop (and ``nexus cancel``) responsive is that no
single operation is allowed to be expensive and the total is metered. The
deadline only fires on templates that are already far past any sensible cost.

Also: method calls are allowed on plain values only from a list of harmless
methods (deny by default), ``lipsum`` and the ``random`` filter are gone (they
are random, which the decider must never be), and constant folding at compile
time runs under the same limits, so ``nexus validate`` cannot be made to hang.
"""

from __future__ import annotations

import functools
import inspect
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from jinja2 import nodes
from jinja2.runtime import LoopContext, Macro, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.utils import Cycler, Joiner, Namespace
from jinja2.visitor import NodeTransformer

from nexus.domain.errors import TemplateError

#: The largest integer a template may make, in bits (about 1,233 decimal digits).
MAX_INT_BITS = 4096
#: The most characters (or items, counted deep) in a value a template makes, and in its output.
MAX_SIZE = 1_000_000
#: The widest field (or the longest precision) in a ``%`` or ``format`` spec.
MAX_WIDTH = 10_000
#: The most items ``range`` gives.
MAX_RANGE = 100_000
#: The work one render may do (see :data:`STEP`), about 0.1-0.3 s of CPU.
WORK_LIMIT = 10_000_000
#: What one loop iteration, operator or filter costs, in work units (a character made costs one).
STEP = 50
#: What one call (a macro, a method, a recursive loop) costs: calls are slower.
CALL = 4 * STEP
#: Wall time one render (or compile) may take.
DEADLINE_S = 1.0


class TemplateLimitError(TemplateError):
    """A template asked for more work, memory or time than the limits allow."""


class _Meter:
    """The work and time one render (or compile) may still spend."""

    __slots__ = ("deadline", "left")

    def __init__(self) -> None:
        self.left = WORK_LIMIT
        self.deadline = time.monotonic() + DEADLINE_S

    def charge(self, units: int) -> None:
        self.left -= units
        if self.left < 0:
            raise TemplateLimitError(
                f"the template does more than {WORK_LIMIT:,} units of work, the template limit "
                f"(a call counts {CALL}, a loop iteration {STEP}, a character or item made one)"
            )
        if time.monotonic() > self.deadline:
            raise TemplateLimitError(
                f"the template took longer than {DEADLINE_S:g} s, the template limit"
            )


_METER: ContextVar[_Meter | None] = ContextVar("nexus_template_meter", default=None)


@contextmanager
def metered() -> Iterator[_Meter]:
    """Give the renders (and compiles) in this block one fresh meter."""
    meter = _Meter()
    token = _METER.set(meter)
    try:
        yield meter
    finally:
        _METER.reset(token)


def _charge(units: int) -> None:
    meter = _METER.get()
    if meter is None:  # outside metered(): still bounded per operation
        meter = _Meter()
    meter.charge(units)


# --------------------------------------------------------------------------- sizes


def weight(value: Any, limit: int = MAX_SIZE) -> int:
    """Characters and items in ``value``, counted deep (shared references count each time).

    Stops counting once past ``limit``, so it costs at most ``limit`` steps.
    """
    if isinstance(value, str | bytes):
        return len(value)
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, bool) or item is None:
            total += 1
        elif isinstance(item, int):
            total += 1 + item.bit_length() // 16
        elif isinstance(item, list | tuple | set | frozenset):
            total += 1 + len(item)
            stack.extend(item)
        elif isinstance(item, Mapping):
            total += 1 + len(item)
            for key, sub in item.items():
                stack.append(key)
                stack.append(sub)
        elif isinstance(item, range):
            total += 1 + len(item)
        else:
            total += 1
        if total > limit:
            return total
    return total


def _limit(what: str) -> TemplateLimitError:
    return TemplateLimitError(
        f"{what} would be larger than {MAX_SIZE:,} characters or items (the template limit)"
    )


def checked(value: Any, what: str) -> Any:
    """``value`` after charging for it; refused when larger than :data:`MAX_SIZE`."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > MAX_INT_BITS:
            raise TemplateLimitError(
                f"{what} is a number of {value.bit_length():,} bits "
                f"(the template limit is {MAX_INT_BITS:,})"
            )
        return value
    if isinstance(value, float | bool) or value is None:
        return value
    if isinstance(value, Iterator):
        return _counted(value)
    size = weight(value)
    _charge(size)
    if size > MAX_SIZE:
        raise _limit(what)
    return value


def _counted(items: Iterable[Any]) -> Iterator[Any]:
    """Iterate ``items``, charging :data:`STEP` per item."""
    for item in items:
        _charge(STEP)
        yield item


def _shallow(value: Any) -> int:
    if isinstance(value, Undefined | Mapping):
        return 1  # an undefined value must stay untouched: `x is defined` asks about it
    return len(value) if isinstance(value, Sized) else 1


def _bounded_range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        raise TemplateLimitError(
            f"range() of {len(rng):,} items (the template limit is {MAX_RANGE:,})"
        )
    return rng


# --------------------------------------------------------------------------- operators


def _check_power(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
        bits = (abs(left).bit_length() - 1) * right
        if bits > MAX_INT_BITS:
            raise TemplateLimitError(
                f"{_short(left)} ** {_short(right)} is a number of more than {bits:,} bits "
                f"(the template limit is {MAX_INT_BITS:,})"
            )


def _check_repeat(left: Any, right: Any) -> None:
    seq, count = (left, right) if isinstance(right, int) else (right, left)
    if isinstance(seq, str | list | tuple) and isinstance(count, int) and count > 1:
        size = weight(seq, MAX_SIZE // count + 1)
        _charge(size)
        if size * count > MAX_SIZE:
            raise _limit(f"repeating a value of size {size:,} {_short(count)} times")


def _check_concat(left: Any, right: Any) -> None:
    if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
        size = weight(left) + weight(right)
        _charge(size)
        if size > MAX_SIZE:
            raise _limit("joining two values with +")


# %[(key)][flags][width][.precision][length]type
_PERCENT = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?(.)", re.DOTALL)


def _check_percent(fmt: str, args: Any) -> None:
    """Refuse ``%`` formats with wide fields before Python builds them."""
    extra = 0
    for match in _PERCENT.finditer(fmt):
        for number in match.group(1, 2):
            if number == "*":
                raise TemplateLimitError("'*' widths are not allowed in template formats")
            if number and int(number) > MAX_WIDTH:
                raise TemplateLimitError(
                    f"the format field {match.group(0)!r} is wider than {MAX_WIDTH:,} "
                    "(the template limit)"
                )
            if number:
                extra += int(number)
    values = args.values() if isinstance(args, Mapping) else args
    size = len(fmt) + extra + weight(values if isinstance(values, tuple | list) else [values])
    _charge(size)
    if size > MAX_SIZE:
        raise _limit("the formatted text")


_WIDTH_IN_SPEC = re.compile(r"\d+")


def _check_spec(spec: str) -> None:
    for number in _WIDTH_IN_SPEC.findall(spec):
        if int(number) > MAX_WIDTH:
            raise TemplateLimitError(
                f"the format spec {spec[:40]!r} has a width or precision over {MAX_WIDTH:,} "
                "(the template limit)"
            )


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, int) or value.bit_length() < 64 else "a big number"
    return text if len(text) <= 40 else text[:37] + "..."


class _BoundedFormatter(SandboxedFormatter):
    def format_field(self, value: Any, format_spec: str) -> Any:
        _check_spec(format_spec)
        _charge(weight(value) + STEP)
        return super().format_field(value, format_spec)


# --------------------------------------------------------------------------- filters


def _bind(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    bound = _signature(func).bind(*args, **kwargs)
    bound.apply_defaults()
    return bound.arguments


@functools.cache
def _signature(func: Callable[..., Any]) -> inspect.Signature:
    return inspect.signature(func)


def _check_replace(text: Any, old: Any, new: Any, count: Any = None) -> None:
    if not isinstance(text, str) or not isinstance(old, str) or not isinstance(new, str):
        return
    growth = len(new) - len(old)
    _charge(len(text))
    if growth <= 0:
        return
    hits = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    if len(text) + hits * growth > MAX_SIZE:
        raise _limit(f"replacing {hits:,} occurrences")


def _check_width(width: Any, what: str) -> None:
    if isinstance(width, int) and width > MAX_SIZE:
        raise _limit(f"{what} of width {width:,}")


def _materialized(items: Any) -> list[Any]:
    if isinstance(items, Mapping):
        items = list(items)
    elif not isinstance(items, list | tuple):
        items = list(_counted(items))
    _charge(STEP + len(items))
    return list(items)


def _pre_join(arguments: dict[str, Any]) -> None:
    items = arguments["value"] = _materialized(arguments["value"])
    sep = arguments.get("d", "")
    size = sum(weight(item) for item in items) + len(str(sep)) * max(len(items) - 1, 0)
    _charge(size)
    if size > MAX_SIZE:
        raise _limit("the joined text")


def _pre_sum(arguments: dict[str, Any]) -> None:
    items = arguments["iterable"] = _materialized(arguments["iterable"])
    start = arguments.get("start", 0)
    if all(isinstance(i, int | float) for i in items) and isinstance(start, int | float):
        return
    # adding sequences copies the running total each time: quadratic, so count it
    running = weight(start)
    cost = 0
    for item in items:
        running += weight(item)
        cost += running
        if running > MAX_SIZE:
            raise _limit("the sum")
    _charge(cost)


def _pre_indent(arguments: dict[str, Any]) -> None:
    text, width = arguments["s"], arguments["width"]
    if isinstance(text, str):
        pad = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
        if len(text) + (text.count("\n") + 1) * pad > MAX_SIZE:
            raise _limit("the indented text")


def _pre_wordwrap(arguments: dict[str, Any]) -> None:
    text, width = arguments["s"], arguments["width"]
    wrap = arguments.get("wrapstring") or "\n"
    if isinstance(text, str) and isinstance(width, int) and width >= 1:
        _charge(len(text) * 4)  # textwrap works chunk by chunk in Python
        if len(text) + (len(text) // width + 1) * len(str(wrap)) > MAX_SIZE:
            raise _limit("the wrapped text")


def _pre_count(name: str) -> Callable[[dict[str, Any]], None]:
    def check(arguments: dict[str, Any]) -> None:
        count = arguments[name]
        if isinstance(count, int) and count > MAX_SIZE:
            raise _limit(f"{name}={count:,}")
        if isinstance(count, int):
            _charge(count * STEP // 2)  # one Python step per slot

    return check


def _pre_format(arguments: dict[str, Any]) -> None:
    value = arguments["value"]
    if isinstance(value, str):
        _check_percent(value, arguments.get("kwargs") or arguments.get("args") or ())


_PRE_FILTER: dict[str, Callable[[dict[str, Any]], None]] = {
    "replace": lambda a: _check_replace(a["s"], a["old"], a["new"], a["count"]),
    "center": lambda a: _check_width(a["width"], "centering"),
    "indent": _pre_indent,
    "wordwrap": _pre_wordwrap,
    "join": _pre_join,
    "sum": _pre_sum,
    "batch": _pre_count("linecount"),
    "slice": _pre_count("slices"),
    "format": _pre_format,
}
#: Filters that look at a value's length or one item, not at all of it.
_CHEAP_FILTERS = frozenset(
    {"length", "count", "first", "last", "default", "d", "attr", "safe", "abs", "int", "float"}
)
#: Filters that are random, which the decider (replayed byte for byte) must never be.
_DROPPED_FILTERS = frozenset({"random"})


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    offset = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0
    pre = _PRE_FILTER.get(name)
    cheap = name in _CHEAP_FILTERS

    @functools.wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _charge(STEP)
        if pre is not None:
            arguments = _bind(func, args, kwargs)
            pre(arguments)
            parameters = _signature(func).parameters
            args, kwargs = _rebuild(parameters, arguments)
        elif not cheap and len(args) > offset:
            size = weight(args[offset])
            _charge(size)
            if size > MAX_SIZE:
                raise _limit(f"the value given to |{name}")
        return checked(func(*args, **kwargs), f"the result of |{name}")

    return bounded


def _rebuild(
    parameters: Mapping[str, inspect.Parameter], arguments: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for pname, param in parameters.items():
        value = arguments[pname]
        if param.kind is param.VAR_POSITIONAL:
            args.extend(value)
        elif param.kind is param.VAR_KEYWORD:
            kwargs.update(value)
        elif param.kind is param.KEYWORD_ONLY:
            kwargs[pname] = value
        else:
            args.append(value)
    return tuple(args), kwargs


def _bounded_test(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _charge(STEP + sum(_shallow(arg) for arg in args))
        return func(*args, **kwargs)

    return bounded


def _measured(value: Any) -> Any:
    """A value about to be compared or joined with ``~``: charge for its size."""
    if isinstance(value, str):
        _charge(len(value))
        return value
    size = weight(value)
    _charge(size)
    if size > MAX_SIZE:
        raise _limit("a value joined with ~")
    return value


def _concat_result(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_SIZE:
        raise _limit("the text joined with ~")
    return value


def _compared(value: Any) -> Any:
    _charge(_shallow(value))
    return value


# --------------------------------------------------------------------------- calls

_STR_METHODS = frozenset(
    {
        "capitalize", "casefold", "count", "endswith", "find", "index", "isalnum", "isalpha",
        "isascii", "isdecimal", "isdigit", "isidentifier", "islower", "isnumeric", "isspace",
        "istitle", "isupper", "lower", "lstrip", "partition", "removeprefix", "removesuffix",
        "rfind", "rindex", "rpartition", "rsplit", "rstrip", "split", "splitlines",
        "startswith", "strip", "swapcase", "title", "upper", "center", "ljust", "rjust",
        "zfill", "replace", "join",
    }
)  # fmt: skip
_MAPPING_METHODS = frozenset({"get", "items", "keys", "values"})
_SEQUENCE_METHODS = frozenset({"count", "index"})
_NUMBER_METHODS = frozenset({"bit_length", "is_integer", "conjugate"})
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})


def _check_method(owner: Any, name: str, args: tuple[Any, ...]) -> None:
    """Deny by default: only harmless methods of plain values may be called."""
    if isinstance(owner, str):
        allowed = name in _STR_METHODS
        if name in _WIDTH_METHODS and args:
            _check_width(args[0], f"str.{name}")
        elif name == "replace" and len(args) >= 2:
            _check_replace(owner, args[0], args[1], args[2] if len(args) > 2 else None)
        elif name == "join" and args:
            items = _materialized(args[0])
            size = sum(weight(i) for i in items) + len(owner) * max(len(items) - 1, 0)
            _charge(size)
            if size > MAX_SIZE:
                raise _limit("the joined text")
    elif isinstance(owner, Mapping):
        allowed = name in _MAPPING_METHODS
    elif isinstance(owner, list | tuple):
        allowed = name in _SEQUENCE_METHODS
    elif isinstance(owner, int | float):
        allowed = name in _NUMBER_METHODS
    else:
        allowed = isinstance(owner, LoopContext | Cycler | Joiner)
    if not allowed:
        raise TemplateLimitError(
            f"calling {type(owner).__name__}.{name}() is not allowed in a workflow template"
        )


def _is_format_wrapper(obj: Any) -> bool:
    return getattr(obj, "_nexus_format", False) is True


# --------------------------------------------------------------------------- the environment


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox with bounded operators, filters, calls, loops and output.

    Mappings resolve keys before attributes: Jinja2 resolves ``x.items`` to the
    dict method before the key ``"items"``; workflow data is plain JSON, so for
    mappings a key wins.
    """

    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "**", "%"})
    intercepted_unops = frozenset({"-", "+"})

    def __init__(self, **options: Any) -> None:
        super().__init__(finalize=_finalize, **options)
        self.globals.pop("lipsum", None)
        self.globals["range"] = _bounded_range
        self.filters = {
            name: _bounded_filter(name, func)
            for name, func in self.filters.items()
            if name not in _DROPPED_FILTERS
        }
        self.filters["_nexus_loop"] = _counted
        self.filters["_nexus_measured"] = _measured
        self.filters["_nexus_concat"] = _concat_result
        self.filters["_nexus_compared"] = _compared
        self.tests = {name: _bounded_test(t) for name, t in self.tests.items()}  # type: ignore[arg-type]

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Mapping):
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                pass
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(argument, slice):
            _charge(STEP + _shallow(obj))
        return super().getitem(obj, argument)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _charge(STEP)
        if operator == "**":
            _check_power(left, right)
        elif operator == "*":
            _check_repeat(left, right)
        elif operator == "+":
            _check_concat(left, right)
        elif operator == "%" and isinstance(left, str):
            _check_percent(left, right)
        try:
            result = self.binop_table[operator](left, right)
        except OverflowError as exc:
            raise TemplateLimitError(f"{operator}: the number is too large ({exc})") from None
        return checked(result, f"the result of {operator}")

    def call_unop(self, context: Any, operator: str, arg: Any) -> Any:
        _charge(STEP)
        return self.unop_table[operator](arg)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``str.format`` and ``format_map`` with bounded field widths."""
        if getattr(value, "__name__", None) not in ("format", "format_map"):
            return None
        owner = getattr(value, "__self__", None)
        if not isinstance(owner, str):
            return None
        is_map = value.__name__ == "format_map"
        # templates render text for tools and prompts (autoescape is off), so a
        # Markup string formats like any other string
        formatter = _BoundedFormatter(self)

        def bounded_format(*args: Any, **kwargs: Any) -> str:
            if is_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one positional argument")
                kwargs = args[0]
                args = ()
            _charge(STEP + len(owner))
            text = formatter.vformat(str(owner), args, kwargs)
            return checked(text, "the formatted text")  # type: ignore[no-any-return]

        bounded_format._nexus_format = True  # type: ignore[attr-defined]
        return bounded_format

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _charge(CALL)
        if isinstance(__obj, LoopContext) and args:
            # a recursive loop's items: counted like any other loop's
            args = (_counted(args[0]), *args[1:])
        elif not (
            isinstance(__obj, Macro | LoopContext | Joiner | Undefined)
            or _is_format_wrapper(__obj)
            or __obj in _SAFE_GLOBALS
        ):
            owner = getattr(__obj, "__self__", None)
            name = getattr(__obj, "__name__", type(__obj).__name__)
            _check_method(owner, name, args)
        result = super().call(__context, __obj, *args, **kwargs)
        return checked(result, "the result of a call")


_SAFE_GLOBALS: tuple[Any, ...] = (_bounded_range, dict, Namespace, Cycler, Joiner)


def _finalize(value: Any) -> Any:
    """Every ``{{ value }}`` on its way to text: measured first (str() of a list expands it)."""
    if isinstance(value, str):
        _charge(len(value))
        if len(value) > MAX_SIZE:
            raise _limit("the text of one expression")
        return value
    size = weight(value)
    _charge(size)
    if size > MAX_SIZE:
        raise _limit("the value of one expression")
    return value


class _Bounder(NodeTransformer):
    """Route loops, ``~`` and comparisons through the meter (see :func:`bound`)."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _filter(node.iter, "_nexus_loop")  # type: ignore[arg-type]
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        node.nodes = [_filter(part, "_nexus_measured") for part in node.nodes]
        return _filter(node, "_nexus_concat")

    def visit_Compare(self, node: nodes.Compare) -> nodes.Node:
        self.generic_visit(node)
        node.expr = _filter(node.expr, "_nexus_compared")
        for operand in node.ops:
            operand.expr = _filter(operand.expr, "_nexus_compared")
        return node


def _filter(expr: nodes.Expr, name: str) -> nodes.Filter:
    return nodes.Filter(expr, name, [], [], None, None, lineno=expr.lineno)


def bound(tree: nodes.Template) -> nodes.Template:
    """Rewrite a parsed template so its loops, ``~`` and comparisons are metered."""
    result = _Bounder().visit(tree)
    assert isinstance(result, nodes.Template)
    return result


def check_output(chunks: Iterable[str]) -> str:
    """Join rendered chunks, refusing output past :data:`MAX_SIZE` characters."""
    parts: list[str] = []
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > MAX_SIZE:
            raise _limit("the rendered text")
        parts.append(chunk)
    _charge(total)
    return "".join(parts)


__all__ = [
    "CALL",
    "DEADLINE_S",
    "MAX_INT_BITS",
    "MAX_RANGE",
    "MAX_SIZE",
    "MAX_WIDTH",
    "STEP",
    "WORK_LIMIT",
    "BoundedEnvironment",
    "TemplateLimitError",
    "bound",
    "check_output",
    "checked",
    "metered",
    "weight",
]
