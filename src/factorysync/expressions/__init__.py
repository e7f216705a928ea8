"""Safe, bounded expressions: ``expr`` transforms (``"(value - 32) * 5 / 9"``) and ``where``.

simpleeval walks a restricted AST: no imports, no dunder access, no Python ``eval``. On
top of that every expression is *bounded*, so that one record can neither exhaust memory
nor stall the process. A thread does not protect against the latter: one big-integer
multiplication runs in C holding the GIL, and no thread, event loop or timer gets to run
until it ends. The only defence is never to start an operation whose result is too big,
so every operation that can make a value grow checks the size of what it would make
*before* making it.

At apply (:func:`compile_expression` raises ValueError, which the config reports under
the field's path): the text's length and syntax, the node types, names, functions and
methods it uses, its nesting depth, and its constant parts (``9**4000000`` is refused
before any record is read).

Per evaluation (the compiled function raises MappingError naming the field and the
limit, so the record is quarantined, skipped or fails the run per ``on_invalid``):

* integers at most ``MAX_INT_BITS`` bits, exponents at most ``MAX_EXPONENT``;
* a built text, list or dict at most ``MAX_TEXT`` characters and items (repetition,
  padding, ``replace``, ``join``, formatting widths are checked before they run), and at
  most ``MAX_BUILT`` of them built in all by one evaluation;
* at most ``MAX_STEPS`` evaluated nodes and ``MAX_CPU_S`` seconds of CPU time of the
  evaluating thread (CPU, not wall, time: a loaded machine must not reject good records).

Names: ``value`` (the field after its cast; None for ``where``) and ``row`` (the whole
source record; ``row.machine`` and ``row['machine']`` read a field).
"""

from __future__ import annotations

import ast
import threading
import time
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from simpleeval import AttributeDoesNotExist, EvalWithCompoundTypes, FeatureNotAvailable

from factorysync.errors import MappingError
from factorysync.expressions.guards import (
    ALL_METHODS,
    BUILDERS,
    FUNCTIONS,
    INT64_MAX,
    INT64_MIN,
    MAX_BUILT,
    MAX_DEPTH,
    MAX_EXPRESSION_CHARS,
    MAX_TEXT,
    OPERATORS,
    ExpressionLimit,
    check_built,
    check_format,
    check_int,
    cut,
    guarded,
    methods_of,
    short,
    size_of,
)

MAX_STEPS = 100_000  # syntax nodes evaluated per evaluation
MAX_CPU_S = 0.2  # CPU seconds per evaluation
_CPU_CHECK_EVERY = 64  # steps between two looks at the clock (a look costs about 1 µs)
BASE_NAMES = frozenset({"value", "row", "None", "True", "False"})


# -- the evaluator --------------------------------------------------------------------
class _Evaluator(EvalWithCompoundTypes):  # type: ignore[misc]  # simpleeval has no types
    """simpleeval with bounded operators, an attribute allow-list and a step/CPU budget.
    One per thread (it holds the state of the evaluation in progress)."""

    def __init__(self) -> None:
        super().__init__(operators=dict(OPERATORS), functions={})
        self.functions = dict(FUNCTIONS)
        self.steps = 0
        self.built = 0
        self.cpu_deadline = 0.0
        for kind in (ast.List, ast.Tuple, ast.Dict, ast.Set, ast.ListComp, ast.GeneratorExp):
            self.nodes[kind] = self._building(self.nodes[kind])
        self.nodes[ast.DictComp] = self._building(self.nodes[ast.DictComp])
        self.nodes[ast.JoinedStr] = self._building(self.nodes[ast.JoinedStr])

    def start(self, names: dict[str, Any]) -> None:
        self.names = names
        self.steps = 0
        self.built = 0
        self._max_count = 0  # simpleeval's count of comprehension items
        self.cpu_deadline = time.thread_time() + MAX_CPU_S

    def _count(self, value: Any, *, strict: bool = True) -> Any:
        """Add a built value to the evaluation's total; ``strict``: it must also be within
        the size limits itself (everything but methods, which check their own growth)."""
        self.built += check_built(value) if strict else size_of(value)
        if self.built > MAX_BUILT:
            raise ExpressionLimit(
                f"it built more than {MAX_BUILT} characters and items in all, the limit"
            )
        return value

    def _building(self, handler: Callable[[ast.AST], Any]) -> Callable[[ast.AST], Any]:
        return lambda node: self._count(handler(node))

    def _eval(self, node: ast.AST) -> Any:
        self.steps += 1
        if self.steps % _CPU_CHECK_EVERY == 0:
            if self.steps > MAX_STEPS:
                raise ExpressionLimit(f"it took more than {MAX_STEPS} steps, the limit")
            if time.thread_time() > self.cpu_deadline:
                raise ExpressionLimit(f"it took more than {MAX_CPU_S} s of CPU time, the limit")
        handler = self.nodes.get(type(node))
        if handler is None:
            raise FeatureNotAvailable(f"{type(node).__name__} is not available in expressions")
        return handler(node)

    def _eval_binop(self, node: ast.BinOp) -> Any:
        operator = self.operators.get(type(node.op))
        if operator is None:
            raise FeatureNotAvailable(f"operator {type(node.op).__name__} is not available")
        return self._count(operator(self._eval(node.left), self._eval(node.right)))

    def _eval_unaryop(self, node: ast.UnaryOp) -> Any:
        operator = self.operators.get(type(node.op))
        if operator is None:
            raise FeatureNotAvailable(f"operator {type(node.op).__name__} is not available")
        return operator(self._eval(node.operand))

    def _eval_call(self, node: ast.Call) -> Any:
        result = super()._eval_call(node)
        func = node.func
        if isinstance(func, ast.Name):
            if func.id in BUILDERS:
                self._count(result)
        elif isinstance(func, ast.Attribute) and func.attr != "get":
            # a method's result (dict.get only reads the record)
            self._count(result, strict=False)
        return result

    def _eval_attribute(self, node: ast.Attribute) -> Any:
        name = node.attr
        if name.startswith("_"):
            raise FeatureNotAvailable(f"'.{name}' is not available in expressions")
        obj = self._eval(node.value)
        if isinstance(obj, dict) and name in obj:  # row.machine reads the field
            return obj[name]
        if name in methods_of(obj):
            return guarded(obj, name, getattr(obj, name))
        if isinstance(obj, dict):
            raise AttributeDoesNotExist(name, self.expr)
        raise FeatureNotAvailable(f"'.{name}' is not available on {type(obj).__name__} values")

    def _eval_formattedvalue(self, node: ast.FormattedValue) -> Any:
        if node.format_spec:
            spec = self._eval(node.format_spec)
            check_format(spec)
            return format(self._eval(node.value), spec)
        return self._eval(node.value)


_local = threading.local()


def _evaluator() -> _Evaluator:
    found: _Evaluator | None = getattr(_local, "evaluator", None)
    if found is None:
        found = _local.evaluator = _Evaluator()
    return found


# -- apply-time checks ----------------------------------------------------------------
_ALLOWED_NODES = (
    ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.Call,
    ast.keyword, ast.Name, ast.Constant, ast.Attribute, ast.Subscript, ast.Slice, ast.List,
    ast.Tuple, ast.Dict, ast.Set, ast.ListComp, ast.GeneratorExp, ast.DictComp,
    ast.comprehension, ast.JoinedStr, ast.FormattedValue, ast.Starred, ast.expr_context,
    ast.boolop, ast.cmpop, ast.operator, ast.unaryop,
)  # fmt: skip


def _check_tree(tree: ast.Expression) -> None:
    """Refuse what would fail on every record, naming it (ValueError)."""
    targets = {
        n.id
        for c in ast.walk(tree)
        if isinstance(c, ast.comprehension)
        for n in ast.walk(c.target)
        if isinstance(n, ast.Name)
    }
    known = BASE_NAMES | set(FUNCTIONS) | targets
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in known:
            raise ValueError(
                f"unknown name {node.id!r} (names: value, row; functions: "
                f"{', '.join(sorted(FUNCTIONS))})"
            )
    depth: dict[int, int] = {id(tree): 0}
    folded: set[int] = set()  # nodes inside a constant part already evaluated
    for node in ast.walk(tree):
        level = depth[id(node)]
        if level > MAX_DEPTH:
            raise ValueError(f"nests deeper than {MAX_DEPTH} levels")
        for child in ast.iter_child_nodes(node):
            depth[id(child)] = level + 1
        if not isinstance(node, _ALLOWED_NODES):
            raise ValueError(f"{type(node).__name__} is not available in expressions")
        if isinstance(node, ast.BinOp | ast.UnaryOp) and type(node.op) not in OPERATORS:
            raise ValueError(f"operator {type(node.op).__name__} is not available")
        if isinstance(node, ast.Compare) and any(type(o) not in OPERATORS for o in node.ops):
            raise ValueError("a comparison operator used is not available")
        if isinstance(node, ast.Call):
            func = node.func
            if not isinstance(func, ast.Name | ast.Attribute):
                raise ValueError("only the listed functions and methods can be called")
            if isinstance(func, ast.Name) and func.id not in FUNCTIONS:
                raise ValueError(f"unknown function {func.id!r}")
            if isinstance(func, ast.Attribute) and func.attr not in ALL_METHODS:
                raise ValueError(f"unknown method {func.attr!r}")
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            raise ValueError(f"'.{node.attr}' is not available in expressions")
        if isinstance(node, ast.Constant):
            _check_constant(node.value)
        if isinstance(node, ast.FormattedValue) and isinstance(node.format_spec, ast.JoinedStr):
            for part in node.format_spec.values:
                if isinstance(part, ast.Constant):
                    _limit_as_value_error(check_format, part.value)
        if id(node) not in folded and _is_constant_arithmetic(node):
            _fold(node)
            folded.update(id(n) for n in ast.walk(node))


def _check_constant(value: Any) -> None:
    if isinstance(value, int) and not isinstance(value, bool):
        _limit_as_value_error(check_int, value)
    elif isinstance(value, str | bytes) and len(value) > MAX_TEXT:
        raise ValueError(f"a text constant longer than {MAX_TEXT} characters")


def _limit_as_value_error(check: Callable[[Any], Any], value: Any) -> None:
    try:
        check(value)
    except ExpressionLimit as exc:
        raise ValueError(str(exc)) from None


def _is_constant_arithmetic(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, int | float) and not isinstance(node.value, bool)
    if isinstance(node, ast.BinOp):
        return _is_constant_arithmetic(node.left) and _is_constant_arithmetic(node.right)
    if isinstance(node, ast.UnaryOp):
        return _is_constant_arithmetic(node.operand)
    return False


def _fold(node: ast.AST) -> None:
    """Evaluate a part made of numbers only (bounded: microseconds); refuse it if it
    fails, as it would on every record."""
    if isinstance(node, ast.Constant):
        return
    evaluator = _Evaluator()
    evaluator.start({})
    try:
        evaluator._eval(node)
    except ExpressionLimit as exc:
        raise ValueError(f"{short(ast.unparse(node))}: {exc}") from None
    except Exception as exc:
        raise ValueError(f"{short(ast.unparse(node))} fails: {cut(str(exc))}") from None


# -- results ---------------------------------------------------------------------------
_SCALARS = (str, bool, int, float, Decimal, datetime, date)
_JSON_SCALARS = (str, bool, int, float)


def check_storable(value: Any) -> None:
    """Raise TypeError unless a column can hold ``value``: a scalar, or a list/dict of
    JSON values (integers within 64 bits: the bounds of JSON numbers the store writes
    exactly)."""
    if value is None or isinstance(value, _SCALARS):
        return
    if not isinstance(value, list | tuple | dict):
        raise TypeError(f"it gives a {type(value).__name__}, which no column can hold")
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if not all(isinstance(k, str) for k in item):
                raise TypeError("it gives a dict with keys that are not text (JSON)")
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            if not INT64_MIN <= item <= INT64_MAX:
                raise TypeError("it gives a list or dict holding an integer beyond 64 bits")
        elif item is not None and not isinstance(item, _JSON_SCALARS):
            raise TypeError(
                f"it gives a list or dict holding a {type(item).__name__}, which JSON cannot "
                "hold (convert it with str() or float())"
            )


# -- the entry point ------------------------------------------------------------------
def compile_expression(
    source: str, label: str | None = None, *, storable: bool = False
) -> Callable[[Any, Any], Any]:
    """Check ``source`` (ValueError naming the problem) and return ``run(value, row)``.

    ``run`` raises MappingError, prefixed with ``label`` (the field), when the evaluation
    fails or reaches a limit (the message names the limit), or, with ``storable``, when
    its result is something no column can hold.
    """
    if not isinstance(source, str):
        raise ValueError("an expression must be text")
    text = source.strip()
    shown = short(source, 80)
    if not text:
        raise ValueError("the expression is empty")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ValueError(
            f"expression {shown} is {len(text)} characters long: the limit is "
            f"{MAX_EXPRESSION_CHARS}"
        )
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"expression {shown} is not valid: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ValueError(f"expression {shown} is not valid: {exc}") from None
    try:
        _check_tree(tree)
    except ValueError as exc:
        raise ValueError(f"expression {shown}: {exc}") from None
    node = tree.body
    prefix = f"{label}: " if label else ""

    def run(value: Any, row: Any) -> Any:
        evaluator = _evaluator()
        evaluator.start({"value": value, "row": row, "None": None, "True": True, "False": False})
        evaluator.expr = text
        try:
            result = evaluator._eval(node)
            if storable:
                check_storable(result)
            return result
        except ExpressionLimit as exc:
            raise MappingError(
                f"{prefix}expression {shown} stopped for value {short(value)}: {exc}"
            ) from None
        except RecursionError:
            raise MappingError(f"{prefix}expression {shown} nests too deeply") from None
        except KeyError as exc:
            raise MappingError(
                f"{prefix}expression {shown} failed for value {short(value)}: "
                f"no field or key {short(exc.args[0] if exc.args else None)}"
            ) from None
        except Exception as exc:  # any failure is this record's, never the run's
            raise MappingError(
                f"{prefix}expression {shown} failed for value {short(value)}: "
                f"{cut(str(exc) or type(exc).__name__)}"
            ) from None

    return run
