"""The columnar fast path: mapping whole Arrow record batches at once.

Taken automatically when the connector can produce Arrow batches and the mapping needs
only what columns can do — renames, casts, constants, defaults, the incremental cursor
filter. Anything else (expressions, value maps, trimming, ``where``, ``explode``,
validation rules, rows without a primary key) uses the row path. A batch whose values
do not fit (a text in a number column) falls back to the row path for that batch alone,
so results are the same either way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from factorysync.engine.mapping import FieldSpec, MappingConfig, snake_case
from factorysync.errors import MappingError
from factorysync.store.bulk import NotColumnar

if TYPE_CHECKING:
    import pyarrow as pa

_ARROW_TYPES = {
    "integer": "int64",
    "float": "float64",
    "string": "string",
    "boolean": "bool",
    "date": "date32",
}


def eligible(config: MappingConfig) -> bool:
    """Whether every part of this mapping can be computed on whole columns."""
    if not config.primary_key or config.where or config.explode or config.validate_:
        return False
    if config.pivot is not None:  # rows are made of samples one by one
        return False
    for spec in (config.fields or {}).values():
        if isinstance(spec, str):
            if "." in spec or "[" in spec:
                return False
            continue
        if spec.map or spec.trim or spec.case or spec.expr or spec.type in ("json", "decimal"):
            return False
        if spec.from_ and ("." in spec.from_ or "[" in spec.from_):
            return False
        if spec.type == "date" and spec.format:
            return False
    return True


def projection(
    config: MappingConfig, kinds: dict[str, str]
) -> tuple[list[tuple[str, str]], list[str]] | None:
    """When this mapping only picks and renames the source's columns (of these kinds):
    each target column with its source column, and the target columns whose text ``map``
    would look at for dates (auto mode). None when it does more."""
    if not eligible(config):
        return None
    pairs: list[tuple[str, str]] = []
    used: set[str] = set()
    for column, spec in (config.fields or {}).items():
        spec = FieldSpec.model_validate({"from": spec}) if isinstance(spec, str) else spec
        source = spec.from_ or column
        kind = kinds.get(source)
        if kind is None or spec.value is not None or spec.default is not None:
            return None
        if spec.type is not None and spec.type != kind:
            return None  # a cast
        pairs.append((column, source))
        used.add(source)
    auto: list[str] = []
    if config.fields is None or config.include_unmapped:
        for name, kind in kinds.items():
            if config.fields is not None and name in used:
                continue
            column = snake_case(name)
            if column.startswith("_") or any(column == c for c, _ in pairs):
                return None
            pairs.append((column, name))
            if kind == "string":
                auto.append(column)
    return pairs, auto


class ColumnarMapper:
    """Maps Arrow record batches to target columns.

    As :class:`~factorysync.engine.mapping.Mapper`: ``zone`` is the connection's
    ``timezone`` for timestamps without an offset, and under ``schema_contract: freeze``
    (:meth:`freeze`) a batch with a new field takes the row path, which quarantines its
    records.
    """

    def __init__(self, config: MappingConfig, *, zone: str = "UTC") -> None:
        self.config = config
        self.zone = zone
        self.frozen: frozenset[str] | None = None
        # Unmapped text columns that were not all dates or timestamps in an earlier
        # batch: they stay text (as on the row path, where a text column keeps its
        # values as written), so later batches skip the pattern match.
        self.plain: set[str] = set()

    def freeze(self, columns: Iterable[str] | None) -> None:
        """The columns auto mode may fill (None: any); see ``Mapper.freeze``."""
        self.frozen = None if columns is None else frozenset(columns)

    def map(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        import pyarrow as pa

        config = self.config
        names: list[str] = []
        arrays: list[pa.Array] = []
        used: set[str] = set()
        for column, spec in (config.fields or {}).items():
            spec = FieldSpec.model_validate({"from": spec}) if isinstance(spec, str) else spec
            names.append(column)
            arrays.append(self._column(batch, column, spec, self.zone))
            used.add(spec.from_ or column)
        if config.fields is None or config.include_unmapped:
            for name, array in zip(batch.schema.names, batch.columns, strict=True):
                if config.fields is not None and name in used:
                    continue
                column = snake_case(name)
                if column.startswith("_"):
                    raise NotColumnar("system column name")
                if column in names:
                    if config.fields is None:
                        raise MappingError(
                            f"fields {name!r} and another field both map to column "
                            f"{column!r}; name the columns in mapping_config.fields"
                        )
                    continue
                if self.frozen is not None and column not in self.frozen:
                    if array.null_count == len(array):
                        continue  # empty: left out, as the row path leaves it out
                    raise NotColumnar(f"new field {name!r} under schema_contract freeze")
                names.append(column)
                if column in self.plain:
                    arrays.append(array)
                    continue
                typed = _typed_text(array)
                if typed is array and array.null_count < len(array):
                    self.plain.add(column)
                arrays.append(typed)
        return pa.RecordBatch.from_arrays(arrays, names=names)

    @staticmethod
    def _column(batch: pa.RecordBatch, name: str, spec: FieldSpec, zone: str) -> pa.Array:
        import pyarrow as pa
        import pyarrow.compute as pc

        rows = batch.num_rows
        if spec.value is not None:
            return pa.array([spec.value] * rows)
        source = spec.from_ or name
        index = batch.schema.get_field_index(source)
        array: Any = batch.column(index) if index >= 0 else pa.nulls(rows)
        try:
            if spec.type == "datetime":
                array = _to_timestamp(array, spec.format, spec.timezone or zone)
            elif spec.type in _ARROW_TYPES and array.type != pa.type_for_alias(
                _ARROW_TYPES[spec.type]
            ):
                array = pc.cast(array, pa.type_for_alias(_ARROW_TYPES[spec.type]))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise NotColumnar(str(exc)) from None
        if spec.default is not None:
            array = pc.fill_null(array, pa.scalar(spec.default, type=array.type))
        return array


def _typed_text(array: pa.Array) -> pa.Array:
    """Auto mode types ISO timestamps (with an offset) and dates in text as the row path
    does: a column whose every value is one becomes a timestamp or date column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from factorysync.kinds import ISO_DATE, ISO_DATETIME

    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        return array
    present = len(array) - array.null_count
    if present == 0:
        return array
    # Every value must match, so the first one decides most columns without a pass over
    # them all (free text, codes, names).
    first = array[0 if not array.null_count else pc.index(array.is_valid(), True).as_py()]
    for pattern, target in ((ISO_DATETIME, pa.timestamp("us", "UTC")), (ISO_DATE, pa.date32())):
        if not pattern.match(first.as_py()):
            continue
        matches = pc.sum(pc.match_substring_regex(array, pattern.pattern)).as_py() or 0
        if matches == present:
            try:
                return pc.cast(array, target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise NotColumnar("text that looks like a date but is not one") from None
    return array


def _to_timestamp(array: pa.Array, fmt: str | None, zone: str) -> pa.Array:
    """Text or timestamps as UTC timestamps; those without an offset are in ``zone``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        if fmt:
            array = pc.strptime(array, format=fmt, unit="us", error_is_null=False)
        else:  # ISO 8601; text without an offset takes the zone below
            try:
                array = pc.cast(array, pa.timestamp("us", "UTC"))
            except pa.ArrowInvalid:
                array = pc.cast(array, pa.timestamp("us"))
    if not pa.types.is_timestamp(array.type):
        raise NotColumnar("not a timestamp")
    if array.type.tz is None:
        # A wall time a clock change skips or repeats raises here: the batch then takes
        # the row path, which reads it as zoneinfo does.
        array = pc.assume_timezone(array, zone)
    return pc.cast(array, pa.timestamp("us", "UTC"))


def filter_cursor(batch: pa.RecordBatch, column: str, floor: Any) -> tuple[pa.RecordBatch, Any]:
    """Rows whose cursor is at or after ``floor``, and the batch's largest cursor."""
    import pyarrow as pa
    import pyarrow.compute as pc

    values = batch.column(batch.schema.get_field_index(column))
    if values.null_count:
        raise NotColumnar("empty cursor values")
    if floor is not None:
        try:
            batch = batch.filter(pc.greater_equal(values, pa.scalar(floor, type=values.type)))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise NotColumnar(str(exc)) from None
        values = batch.column(batch.schema.get_field_index(column))
    if batch.num_rows == 0:
        return batch, None
    return batch, pc.max(values).as_py()
