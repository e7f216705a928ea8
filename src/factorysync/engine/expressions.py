"""Safe arithmetic expressions for unit conversion (``expr: "(value - 32) * 5 / 9"``).

Evaluated by simpleeval, which walks a restricted AST: no attribute access to dunders,
no imports, no calls except the functions listed here, bounded power and string sizes.
Names: ``value`` (the field after its cast) and ``row`` (the whole source record).
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from typing import Any

from simpleeval import EvalWithCompoundTypes, InvalidExpression

from factorysync.errors import MappingError

FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "int": int,
    "float": float,
    "str": str,
    "len": len,
    "sqrt": math.sqrt,
    "floor": math.floor,
    "ceil": math.ceil,
}


def compile_expression(source: str) -> Callable[[Any, Any], Any]:
    """Parse once (raising ValueError with the reason on bad syntax); evaluate many times."""
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"expression {source!r} is not valid: {exc.msg}") from None
    evaluator = EvalWithCompoundTypes(functions=FUNCTIONS)
    node = tree.body

    def run(value: Any, row: Any) -> Any:
        evaluator.names = {"value": value, "row": row, "None": None, "True": True, "False": False}
        try:
            return evaluator._eval(node)
        except (InvalidExpression, ArithmeticError, TypeError, ValueError, KeyError) as exc:
            raise MappingError(f"expression {source!r} failed for value {value!r}: {exc}") from None

    return run
