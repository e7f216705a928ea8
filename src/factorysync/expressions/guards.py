"""The bounds of safe expressions (:mod:`factorysync.expressions`): the limits,
the size checks, the operators, functions and methods an expression may use, each
checking the size of what it would make *before* making it.
"""

from __future__ import annotations

import ast
import math
import operator as op
import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

MAX_EXPRESSION_CHARS = 2_000  # length of an expression's text
MAX_DEPTH = 100  # nesting of its syntax tree (a chain a + b + c nests one level per term)
MAX_INT_BITS = 4_096  # any integer it makes (about 1233 decimal digits)
MAX_EXPONENT = 4_096  # integer ** integer (bases 0, 1 and -1 excepted)
MAX_TEXT = 100_000  # characters and items of one text, list or dict it builds
MAX_BUILT = 1_000_000  # characters and items of everything one evaluation builds
MAX_FORMAT_WIDTH = 1_000  # widths and precisions in formats: f"{v:>9}", "%5d", strftime
MAX_ROUND_DIGITS = 1_000  # round(x, n): |n|
_MAX_INT_DIGITS = int(MAX_INT_BITS * math.log10(2))
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class ExpressionLimit(Exception):
    """An evaluation reached one of the limits above (the message names it)."""


# -- size checks ------------------------------------------------------------------------
def size_of(value: Any, budget: int = MAX_TEXT) -> int:
    """Characters plus items of ``value`` and everything in it; stops counting past
    ``budget`` (so a huge value costs no more to measure than a small one)."""
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, dict):
            total += len(item)
            if total <= budget:
                stack.extend(item.keys())
                stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += len(item)
            if total <= budget:
                stack.extend(item)
        else:
            total += 1
        if total > budget:
            return total
    return total


def short(value: Any, limit: int = 60) -> str:
    """``repr`` of a value for a message, cut to about ``limit`` characters (and never the
    digits of a huge integer: converting those to text is itself slow)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"<integer of {value.bit_length()} bits>"
    if isinstance(value, str | bytes) and len(value) > limit:
        return repr(value[:limit]) + f"... ({len(value)} characters)"
    if isinstance(value, list | tuple | dict | set) and size_of(value, limit) > limit:
        return f"<{type(value).__name__} of {len(value)} items>"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def cut(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_int(value: int) -> None:
    bits = value.bit_length()
    if bits > MAX_INT_BITS:
        raise ExpressionLimit(f"an integer of {bits} bits is above the limit of {MAX_INT_BITS}")


def check_built(value: Any) -> int:
    """Raise unless ``value`` is within the size limits; its size."""
    if isinstance(value, bool):
        return 1
    if isinstance(value, int):
        check_int(value)
        return 1
    if isinstance(value, str | bytes | list | tuple | dict | set | frozenset):
        size = size_of(value)
        if size > MAX_TEXT:
            kind = "text" if isinstance(value, str | bytes) else type(value).__name__
            raise ExpressionLimit(
                f"a {kind} of more than {MAX_TEXT} characters and items is above the limit"
            )
        return size
    return 1


_SPEC_NUMBER = re.compile(r"\d+")
_PRINTF_FIELD = re.compile(r"%(?:\([^)]*\))?[-+ #0]*(\*|\d+)?(?:\.(\*|\d*))?")
_STRFTIME_FIELD = re.compile(r"%[-_0^#]*(\d+)")


def _check_width(digits: str, spec: str) -> None:
    if digits == "*":
        raise ExpressionLimit(f"a '*' width in {short(spec)} is not allowed")
    if digits and (len(digits) > 6 or int(digits) > MAX_FORMAT_WIDTH):
        raise ExpressionLimit(
            f"format width {digits[:12]} in {short(spec)} is above the limit of {MAX_FORMAT_WIDTH}"
        )


def check_format(spec: Any, kind: str = "spec") -> None:
    """Widths and precisions of a format are bounded: ``kind`` "spec" (f-string, every
    number in it), "printf" (``"%05d" % v``) or "strftime"."""
    if not isinstance(spec, str):
        return
    if kind == "spec":
        for digits in _SPEC_NUMBER.findall(spec):
            _check_width(digits, spec)
    elif kind == "printf":
        for width, precision in _PRINTF_FIELD.findall(spec):
            _check_width(width, spec)
            _check_width(precision, spec)
    else:
        for digits in _STRFTIME_FIELD.findall(spec):
            _check_width(digits, spec)


def _check_decimal_to_int(value: Any) -> None:
    if isinstance(value, Decimal) and value.is_finite() and value.adjusted() > _MAX_INT_DIGITS:
        raise ExpressionLimit(
            f"the integer part of {short(value)} has more than {_MAX_INT_DIGITS} digits"
        )


# -- bounded operators ----------------------------------------------------------------
def _is_int(value: Any) -> bool:
    return isinstance(value, int)


def _pow(a: Any, b: Any) -> Any:
    if _is_int(a) and _is_int(b) and b > 0 and abs(a) > 1:
        if b > MAX_EXPONENT:
            raise ExpressionLimit(f"exponent {short(b)} is above the limit of {MAX_EXPONENT}")
        if b * math.log2(abs(a)) > MAX_INT_BITS:
            raise ExpressionLimit(
                f"{short(a)} ** {b} has more than {MAX_INT_BITS} bits, the integer limit"
            )
    return a**b


def _repeat_check(seq: Any, times: int) -> None:
    if times > 0 and size_of(seq) * times > MAX_TEXT:
        raise ExpressionLimit(
            f"repeating a {type(seq).__name__} {short(times)} times makes more than "
            f"{MAX_TEXT} characters and items, the limit"
        )


def _mul(a: Any, b: Any) -> Any:
    if _is_int(a) and _is_int(b):
        if a.bit_length() + b.bit_length() - 1 > MAX_INT_BITS:
            raise ExpressionLimit(
                f"{short(a)} * {short(b)} has more than {MAX_INT_BITS} bits, the integer limit"
            )
    elif _is_int(b) and isinstance(a, str | bytes | list | tuple):
        _repeat_check(a, b)
    elif _is_int(a) and isinstance(b, str | bytes | list | tuple):
        _repeat_check(b, a)
    return a * b


def _lshift(a: Any, b: Any) -> Any:
    if _is_int(a) and _is_int(b) and b > 0 and a and a.bit_length() + b > MAX_INT_BITS:
        raise ExpressionLimit(
            f"{short(a)} << {short(b)} has more than {MAX_INT_BITS} bits, the integer limit"
        )
    return a << b


def _mod(a: Any, b: Any) -> Any:
    if isinstance(a, str):  # printf-style formatting
        check_format(a, "printf")
    return a % b


OPERATORS: dict[type, Callable[..., Any]] = {
    ast.Add: op.add,
    ast.Sub: op.sub,
    ast.Mult: _mul,
    ast.Div: op.truediv,
    ast.FloorDiv: op.floordiv,
    ast.Mod: _mod,
    ast.Pow: _pow,
    ast.LShift: _lshift,
    ast.RShift: op.rshift,
    ast.BitOr: op.or_,
    ast.BitAnd: op.and_,
    ast.BitXor: op.xor,
    ast.Invert: op.invert,
    ast.Not: op.not_,
    ast.USub: op.neg,
    ast.UAdd: op.pos,
    ast.Eq: op.eq,
    ast.NotEq: op.ne,
    ast.Gt: op.gt,
    ast.Lt: op.lt,
    ast.GtE: op.ge,
    ast.LtE: op.le,
    ast.In: lambda x, y: op.contains(y, x),
    ast.NotIn: lambda x, y: not op.contains(y, x),
    ast.Is: lambda x, y: x is y,
    ast.IsNot: lambda x, y: x is not y,
}


# -- functions and methods ------------------------------------------------------------
def _int(value: Any = 0, *base: Any) -> int:
    _check_decimal_to_int(value)
    return int(value, *base)


def _round(value: Any, ndigits: Any = None) -> Any:
    if ndigits is None:
        _check_decimal_to_int(value)
        return round(value)
    if abs(ndigits) > MAX_ROUND_DIGITS:
        raise ExpressionLimit(f"round to {short(ndigits)} digits: the limit is {MAX_ROUND_DIGITS}")
    return round(value, ndigits)


def _floor(value: Any) -> Any:
    _check_decimal_to_int(value)
    return math.floor(value)


def _ceil(value: Any) -> Any:
    _check_decimal_to_int(value)
    return math.ceil(value)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "round": _round,
    "min": min,
    "max": max,
    "int": _int,
    "float": float,
    "str": str,
    "len": len,
    "sqrt": math.sqrt,
    "floor": _floor,
    "ceil": _ceil,
    "list": list,
    "tuple": tuple,
    "dict": dict,
    "set": set,
}
# Functions whose result can be larger than their arguments: checked as built values.
BUILDERS = frozenset({"str", "list", "tuple", "dict", "set"})

_TEXT_METHODS = frozenset(
    {
        "upper", "lower", "strip", "lstrip", "rstrip", "title", "capitalize", "casefold",
        "swapcase", "startswith", "endswith", "split", "rsplit", "splitlines", "partition",
        "rpartition", "find", "rfind", "index", "rindex", "count", "isdigit", "isnumeric",
        "isdecimal", "isalpha", "isalnum", "isspace", "isupper", "islower", "removeprefix",
        "removesuffix", "replace", "join", "zfill", "ljust", "rjust", "center",
    }
)  # fmt: skip
_DATE_METHODS = frozenset(
    {"year", "month", "day", "weekday", "isoweekday", "isoformat", "strftime"}
)
# What ``.name`` may reach, by type; anything else is refused. No method changes a value:
# an expression must not alter the record other columns read.
METHODS: dict[type, frozenset[str]] = {
    str: _TEXT_METHODS,
    dict: frozenset({"get", "keys", "values", "items"}),
    list: frozenset({"count", "index"}),
    tuple: frozenset({"count", "index"}),
    datetime: _DATE_METHODS | {"hour", "minute", "second", "microsecond", "date", "timestamp"},
    date: _DATE_METHODS,
    float: frozenset({"is_integer"}),
    int: frozenset({"bit_length"}),
    Decimal: frozenset({"is_nan", "is_signed", "is_zero", "is_finite"}),
}
ALL_METHODS = frozenset().union(*METHODS.values())


def guarded(obj: Any, name: str, method: Any) -> Any:
    """The method as callable from an expression: those that can grow a text check first."""
    if isinstance(obj, str):
        if name == "replace":

            def replace(old: str, new: str, count: int = -1) -> str:
                found = obj.count(old) if old else len(obj) + 1
                if count >= 0:
                    found = min(found, count)
                if len(obj) + found * (len(new) - len(old)) > MAX_TEXT:
                    raise ExpressionLimit(f"replace would make a text longer than {MAX_TEXT}")
                return obj.replace(old, new, count)

            return replace
        if name == "join":

            def join(items: Any) -> str:
                items = list(items)
                parts = sum(len(i) for i in items if isinstance(i, str))
                if parts + len(obj) * max(len(items) - 1, 0) > MAX_TEXT:
                    raise ExpressionLimit(f"join would make a text longer than {MAX_TEXT}")
                return obj.join(items)

            return join
        if name in ("zfill", "ljust", "rjust", "center"):

            def pad(width: int, *fill: str) -> str:
                if width > MAX_TEXT:
                    raise ExpressionLimit(f"{name}({short(width)}) is above the limit {MAX_TEXT}")
                padded: str = method(width, *fill)
                return padded

            return pad
    if name == "strftime":

        def strftime(fmt: str) -> str:
            check_format(fmt, "strftime")
            if len(fmt) > MAX_FORMAT_WIDTH:
                raise ExpressionLimit(f"a strftime format longer than {MAX_FORMAT_WIDTH}")
            formatted: str = method(fmt)
            return formatted

        return strftime
    return method


def methods_of(obj: Any) -> frozenset[str]:
    for kind in type(obj).__mro__:
        found = METHODS.get(kind)
        if found is not None:
            return found
    return frozenset()
