"""The columns of a CSV block, read as text, converted to typed columns.

A column the config types (``column_types``) is converted to that type, and the first
value that does not fit is named in the error. Any other column takes the narrowest
type all of its values fit, trying first the kind it took in earlier blocks of the file;
a column that was text once stays text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from factorysync.errors import ConnectorFatal

if TYPE_CHECKING:
    import pyarrow as pa

    from factorysync.connectors.file.csv import CsvOptions

_TIME_DIRECTIVES = re.compile(r"%[HIMSfpTXcRrsz]")
_NUMBER = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"
_LEADING_ZERO = r"^\s*[+-]?0\d"
_TRUE = ("true", "1", "yes", "y", "t", "on")
_FALSE = ("false", "0", "no", "n", "f", "off")


class Converter:
    """Converts the text columns of one block to typed columns."""

    def __init__(self, options: CsvOptions, zone: str, label: str, naive: set[str]) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        self.pa, self.pc = pa, pc
        self.options = options
        self.zone = zone
        self.label = label
        self.naive = naive  # columns of timestamps read without an offset
        # The kind each column took in earlier blocks: tried first, since a column keeps
        # its kind through a file; a text column stays text (its values are kept as is).
        self.kinds: dict[str, str] = {}

    def convert(self, block: pa.RecordBatch, first_row: int) -> pa.RecordBatch:
        columns = []
        for name, column in zip(block.schema.names, block.columns, strict=True):
            declared = self.options.column_types.get(name)
            if declared is not None:
                columns.append(self._declared(name, column, declared, first_row))
            elif self.options.infer_types and column.null_count < len(column):
                columns.append(self._inferred(name, column))
            else:
                columns.append(column)
        return self.pa.RecordBatch.from_arrays(columns, names=block.schema.names)

    # -- conversions (each raises ArrowInvalid/ValueError when a value does not fit) --
    def _integer(self, column: Any) -> Any:
        return self.pc.cast(self.pc.utf8_trim_whitespace(column), self.pa.int64())

    def _float(self, column: Any) -> Any:
        pc = self.pc
        text = column
        try:  # numbers without blanks or marks need no trimming
            if self.options.thousands or self.options.decimal == ",":
                raise self.pa.ArrowInvalid("marks to replace first")
            numbers = pc.cast(text, self.pa.float64())
        except self.pa.ArrowInvalid:
            text = pc.utf8_trim_whitespace(column)
            if self.options.thousands:
                text = pc.replace_substring(text, self.options.thousands, "")
            if self.options.decimal == ",":
                text = pc.replace_substring(text, ",", ".")
            numbers = pc.cast(text, self.pa.float64())
        # Arrow also reads "nan" and "inf(inity)", which are text here: the regex runs
        # only when a value came out as one of those (or as a number too large for a
        # float, which it lets through).
        if (
            pc.any(pc.invert(pc.is_finite(numbers))).as_py()
            and pc.any(pc.invert(pc.match_substring_regex(text, _NUMBER))).as_py()
        ):
            raise ValueError("not a number")
        return numbers

    def _number(self, column: Any, kind: str) -> Any:
        """An integer or float column, unless a value is a code with leading zeros (007)."""
        pc = self.pc
        if kind == "integer":
            try:  # plain digits need no trimming
                converted = pc.cast(column, self.pa.int64())
            except self.pa.ArrowInvalid:
                converted = self._integer(column)
            if pc.all(pc.equal(pc.cast(converted, self.pa.string()), column)).as_py() is not False:
                return converted
        else:
            converted = self._float(column)
            trimmed = pc.utf8_ltrim_whitespace(column)
            zero = pc.starts_with(trimmed, "0")
            for prefix in ("-0", "+0"):
                zero = pc.or_(zero, pc.starts_with(trimmed, prefix))
            if not pc.any(zero).as_py():
                return converted
            column = column.filter(zero)  # only values that start with a zero can be codes
        if not pc.any(pc.match_substring_regex(column, _LEADING_ZERO)).as_py():
            return converted
        raise ValueError("a code with leading zeros")

    def _boolean(self, column: Any, *, strict_words: bool) -> Any:
        pc = self.pc
        lower = pc.utf8_lower(pc.utf8_trim_whitespace(column))
        truthy, falsy = (("true",), ("false",)) if strict_words else (_TRUE, _FALSE)
        is_true = pc.is_in(lower, value_set=self.pa.array(truthy))
        is_false = pc.is_in(lower, value_set=self.pa.array(falsy))
        if pc.any(pc.and_(pc.invert(is_true), pc.invert(is_false))).as_py():
            raise ValueError("not a boolean")
        return pc.if_else(pc.is_null(lower), self.pa.scalar(None, self.pa.bool_()), is_true)

    def _temporal(self, column: Any, want: str | None, name: str) -> Any:
        pa, pc = self.pa, self.pc
        text = pc.utf8_trim_whitespace(column)
        formats = self.options.date_formats
        if not formats:
            # ISO 8601 text is typed by the engine (timestamps need an explicit offset).
            if want == "date":
                return pc.cast(text, pa.date32())
            if want == "datetime":
                return self._localize(pc.cast(text, pa.timestamp("us")), name)
            raise ValueError("no date formats")
        for fmt in formats:
            timed = bool(_TIME_DIRECTIVES.search(fmt))
            if (want == "date" and timed) or (want == "datetime" and not timed):
                continue
            try:
                parsed = pc.strptime(text, format=fmt, unit="us", error_is_null=False)
            except (pa.ArrowInvalid, ValueError):
                continue
            return self._localize(parsed, name) if timed else pc.cast(parsed, pa.date32())
        raise ValueError("no date format fits")

    def _localize(self, column: Any, name: str) -> Any:
        if getattr(column.type, "tz", None):
            return column
        self.naive.add(name)
        return self.pc.assume_timezone(
            column, timezone=self.zone, ambiguous="earliest", nonexistent="earliest"
        )

    def _inferred(self, name: str, column: Any) -> Any:
        attempts = {
            "integer": lambda c: self._number(c, "integer"),
            "float": lambda c: self._number(c, "float"),
            "boolean": lambda c: self._boolean(c, strict_words=True),
            "datetime": lambda c: self._temporal(c, None, name),
        }
        previous = self.kinds.get(name)
        if previous == "string":
            return column
        order = list(attempts)
        if previous is not None:
            order.remove(previous)
            order.insert(0, previous)
        for kind in order:
            try:
                converted = attempts[kind](column)
            except (self.pa.ArrowInvalid, ValueError):
                continue
            self.kinds[name] = kind
            return converted
        self.kinds[name] = "string"
        return column

    def _declared(self, name: str, column: Any, kind: str, first_row: int) -> Any:
        converters: dict[str, Callable[[Any], Any]] = {
            "string": lambda c: c,
            "integer": self._integer,
            "float": self._float,
            "boolean": lambda c: self._boolean(c, strict_words=False),
            "date": lambda c: self._temporal(c, "date", name),
            "datetime": lambda c: self._temporal(c, "datetime", name),
        }
        convert = converters[kind]
        try:
            return convert(column)
        except (self.pa.ArrowInvalid, ValueError):
            pass
        # Name the first value that does not fit.
        for index, value in enumerate(column.to_pylist()):
            if value is None:
                continue
            try:
                convert(self.pa.array([value], self.pa.string()))
            except (self.pa.ArrowInvalid, ValueError):
                formats = self.options.date_formats if kind in ("date", "datetime") else []
                article = "an" if kind == "integer" else "a"
                raise ConnectorFatal(
                    f"{self.label}: data row {first_row + index + 1}, column {name!r}: "
                    f"{value!r} is not {article} {kind}"
                    + (f" in the formats {formats}" if formats else "")
                ) from None
        raise ConnectorFatal(f"{self.label}: column {name!r} does not fit the type {kind}")
