"""Data-quality rules (``mapping_config.validate``), checked on every mapped row."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from factorysync.engine.mapping import ValidationRule

Check = Callable[[Any], str | None]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class Validator:
    """Compiled rules; ``check(row)`` returns the reasons a row is invalid (empty if valid)."""

    def __init__(self, rules: list[ValidationRule]) -> None:
        self._checks: list[tuple[str, Check]] = [(r.field, self._compile(r)) for r in rules]

    @staticmethod
    def _compile(rule: ValidationRule) -> Check:
        field, limit = rule.field, rule.value
        if rule.rule == "required":
            return lambda v: f"{field} is required" if v is None or v == "" else None
        if rule.rule in ("min", "max"):
            below = rule.rule == "min"

            def bound(v: Any) -> str | None:
                if v is None:
                    return None
                n = _number(v)
                if n is None:
                    return f"{field} = {v!r} is not a number"
                if below and n < limit:
                    return f"{field} = {v!r} is below the minimum {limit}"
                if not below and n > limit:
                    return f"{field} = {v!r} is above the maximum {limit}"
                return None

            return bound
        if rule.rule == "regex":
            pattern = re.compile(limit)
            return lambda v: (
                None
                if v is None or pattern.fullmatch(str(v))
                else f"{field} = {v!r} does not match {limit!r}"
            )
        if rule.rule == "allowed":
            allowed = list(limit)
            return lambda v: (
                None if v is None or v in allowed else f"{field} = {v!r} is not one of {allowed}"
            )
        seen: set[Any] = set()

        def unique(v: Any) -> str | None:
            if v is None:
                return None
            key = repr(v) if isinstance(v, dict | list) else v
            if key in seen:
                return f"{field} = {v!r} appears more than once in this run"
            seen.add(key)
            return None

        return unique

    def check(self, row: dict[str, Any]) -> list[str]:
        return [msg for field, fn in self._checks if (msg := fn(row.get(field))) is not None]
