"""Sparkplug B payloads: the protobuf schema, metric values by datatype, and the payloads
factorysync sends (the rebirth command).

The schema is Eclipse Tahu's ``sparkplug_b.proto`` (beside this module, under the
EPL-2.0), compiled to ``sparkplug_b_pb2``; the protobuf runtime is imported on first use,
so MQTT sources that do not speak Sparkplug never need it.

A metric's value is read as its datatype says (Sparkplug 3.0, "Datatype details"); a DATA
metric that names no datatype has the one its birth declared:

=====================  =========================================================
datatype               value
=====================  =========================================================
Int8 … Int64           int; negative values arrive in two's complement and are
                       sign-extended from the type's own width
UInt8 … UInt64         int
Float                  float, the shortest decimal that is the same 32-bit float
                       (21.3, not 21.299999237060547)
Double                 float
Boolean                bool
String, Text, UUID     str
DateTime               ISO 8601 text in UTC with milliseconds (the wire has ms
                       since the epoch): a timestamp column where the store infers
                       kinds, and plain text in a JSON column
Bytes, File            base64 text
DataSet                ``{"columns": [...], "types": [...], "rows": [[...], ...]}``
Template               ``{"template_ref", "version", "is_definition",
                       "parameters": {name: value}, "metrics": {name: value}}``
Int8Array …            a list; packed little-endian in ``bytes_value`` (BooleanArray:
DateTimeArray          a 4-byte count, then the bits, most significant first;
                       StringArray: NUL-terminated UTF-8 texts)
=====================  =========================================================

A metric with ``is_null`` has the value None. A value that cannot be read as its
datatype (a text where an Int32 is due, a truncated array) raises ValueError, which the
session turns into a quarantine entry for that metric alone.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from factorysync.errors import ConfigError

INSTALL = "pip install 'factorysync[mqtt]'"

# Datatype names by number, as the schema's DataType enum has them.
DATATYPES = (
    "Unknown", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64",
    "Float", "Double", "Boolean", "String", "DateTime", "Text", "UUID", "DataSet", "Bytes",
    "File", "Template", "PropertySet", "PropertySetList", "Int8Array", "Int16Array",
    "Int32Array", "Int64Array", "UInt8Array", "UInt16Array", "UInt32Array", "UInt64Array",
    "FloatArray", "DoubleArray", "BooleanArray", "StringArray", "DateTimeArray",
)  # fmt: skip
BOOLEAN = 11
REBIRTH_METRIC = "Node Control/Rebirth"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_F32 = struct.Struct("<f")
# Packed arrays: struct format character and item size by datatype number.
_PACKED = {22: "b", 23: "h", 24: "i", 25: "q", 26: "B", 27: "H", 28: "I", 29: "Q", 30: "f", 31: "d"}
_schema: Any = None


def schema() -> Any:
    """The compiled Sparkplug B schema module (imported on first use)."""
    global _schema
    if _schema is None:
        try:
            from factorysync.connectors import sparkplug_b_pb2
        except ImportError as exc:
            if not (exc.name or "").startswith("google"):
                raise
            raise ConfigError(
                f"Sparkplug B payloads need the protobuf package: {INSTALL}"
            ) from None
        _schema = sparkplug_b_pb2
    return _schema


def parse(payload: bytes) -> Any:
    """A ``Payload`` message; ValueError when the bytes are not one."""
    from google.protobuf.message import DecodeError

    try:
        return schema().Payload.FromString(payload)
    except DecodeError as exc:
        raise ValueError(f"payload is not a Sparkplug B protobuf payload: {exc}") from None


def as_json(message: Any) -> dict[str, Any]:
    """A message as JSON-ready data (bytes as base64, 64-bit integers as text), for
    quarantine entries and event details."""
    from google.protobuf.json_format import MessageToDict

    found: dict[str, Any] = MessageToDict(message, preserving_proto_field_name=True)
    return found


def datatype_name(number: int) -> str:
    return DATATYPES[number] if 0 <= number < len(DATATYPES) else f"Unknown({number})"


def timestamp(ms: int) -> datetime:
    """Milliseconds since the epoch as an aware UTC datetime (exact, no float rounding)."""
    return _EPOCH + timedelta(milliseconds=ms)


def iso(ms: int) -> str:
    return timestamp(ms).isoformat(timespec="milliseconds")


def value_of(holder: Any, datatype: int) -> Any:
    """The value of a ``Metric``, ``Template.Parameter`` or ``DataSet.DataSetValue`` as
    ``datatype`` says; None when it holds none. ValueError when it cannot be read so."""
    which = holder.WhichOneof("value")
    if which is None or which == "extension_value":
        return None
    raw = getattr(holder, which)
    convert = _CONVERT.get(datatype)
    if convert is None:  # Unknown, or a type no metric carries: as the wire holds it
        return _as_sent(raw, which)
    try:
        return convert(raw, which)
    except (ValueError, TypeError, OverflowError, struct.error) as exc:
        raise ValueError(
            f"its {which} cannot be read as {datatype_name(datatype)}: {exc}"
        ) from None


def rebirth_command(now_ms: int) -> bytes:
    """The NCMD payload asking an edge node to publish its births again."""
    pb = schema()
    payload = pb.Payload(timestamp=now_ms)
    metric = payload.metrics.add()
    metric.name = REBIRTH_METRIC
    metric.timestamp = now_ms
    metric.datatype = BOOLEAN
    metric.boolean_value = True
    return bytes(payload.SerializeToString())


# -- conversions --------------------------------------------------------------------------
def _signed(bits: int) -> Callable[[Any, str], int]:
    mask, sign = (1 << bits) - 1, 1 << (bits - 1)

    def convert(raw: Any, which: str) -> int:
        value = _integer(raw, which) & mask
        return value - (mask + 1) if value & sign else value

    return convert


def _unsigned(bits: int) -> Callable[[Any, str], int]:
    mask = (1 << bits) - 1
    return lambda raw, which: _integer(raw, which) & mask


def _integer(raw: Any, which: str) -> int:
    if which not in ("int_value", "long_value"):
        raise ValueError("not an integer field")
    return int(raw)


def float32(value: float) -> float:
    """The shortest decimal that is the same 32-bit float as ``value``."""
    for digits in (6, 7, 8, 9):
        shorter = float(f"{value:.{digits}g}")
        if _F32.unpack(_F32.pack(shorter))[0] == value:
            return shorter
    return value  # NaN


def _float(raw: Any, which: str) -> float:
    if which == "float_value":
        return float32(raw)
    if which not in ("double_value", "int_value", "long_value"):
        raise ValueError("not a number field")
    return float(raw)


def _boolean(raw: Any, which: str) -> bool:
    if which not in ("boolean_value", "int_value", "long_value"):
        raise ValueError("not a boolean field")
    return bool(raw)


def _text(raw: Any, which: str) -> str:
    if which != "string_value":
        raise ValueError("not a string field")
    return str(raw)


def _datetime(raw: Any, which: str) -> str:
    return iso(_integer(raw, which))


def _bytes(raw: Any, which: str) -> str:
    if which != "bytes_value":
        raise ValueError("not a bytes field")
    return base64.b64encode(raw).decode("ascii")


def _dataset(raw: Any, which: str) -> dict[str, Any]:
    if which != "dataset_value":
        raise ValueError("not a dataset field")
    types = list(raw.types)
    rows = []
    for row in raw.rows:
        cells = list(row.elements)
        if len(cells) != len(types):
            raise ValueError(f"a row has {len(cells)} value(s) for {len(types)} column(s)")
        rows.append([value_of(cell, t) for cell, t in zip(cells, types, strict=True)])
    return {"columns": list(raw.columns), "types": [datatype_name(t) for t in types], "rows": rows}


def _template(raw: Any, which: str) -> dict[str, Any]:
    if which != "template_value":
        raise ValueError("not a template field")
    return {
        "template_ref": raw.template_ref if raw.HasField("template_ref") else None,
        "version": raw.version if raw.HasField("version") else None,
        "is_definition": raw.is_definition,
        "parameters": {p.name: value_of(p, p.type) for p in raw.parameters},
        "metrics": {m.name: None if m.is_null else value_of(m, m.datatype) for m in raw.metrics},
    }


def _packed(code: str) -> Callable[[Any, str], list[Any]]:
    item = struct.Struct("<" + code)

    def convert(raw: Any, which: str) -> list[Any]:
        if which != "bytes_value":
            raise ValueError("not a bytes field")
        if len(raw) % item.size:
            raise ValueError(f"{len(raw)} bytes is no whole number of {item.size}-byte items")
        values = [v for (v,) in item.iter_unpack(raw)]
        return [float32(v) for v in values] if code == "f" else values

    return convert


def _boolean_array(raw: Any, which: str) -> list[bool]:
    if which != "bytes_value":
        raise ValueError("not a bytes field")
    if len(raw) < 4:
        raise ValueError("no 4-byte count")
    (count,) = struct.unpack_from("<I", raw)
    if len(raw) - 4 < (count + 7) // 8:
        raise ValueError(f"{count} booleans need {(count + 7) // 8} bytes after the count")
    return [bool(raw[4 + i // 8] >> (7 - i % 8) & 1) for i in range(count)]


def _string_array(raw: Any, which: str) -> list[str]:
    if which != "bytes_value":
        raise ValueError("not a bytes field")
    texts = bytes(raw).decode("utf-8").split("\x00")
    return texts[:-1] if texts and texts[-1] == "" else texts


def _datetime_array(raw: Any, which: str) -> list[str]:
    return [iso(ms) for ms in _packed("q")(raw, which)]


def _as_sent(raw: Any, which: str) -> Any:
    if which == "float_value":
        return float32(raw)
    if which == "bytes_value":
        return _bytes(raw, which)
    if which == "dataset_value":
        return _dataset(raw, which)
    if which == "template_value":
        return _template(raw, which)
    return raw


_CONVERT: dict[int, Callable[[Any, str], Any]] = {
    1: _signed(8),
    2: _signed(16),
    3: _signed(32),
    4: _signed(64),
    5: _unsigned(8),
    6: _unsigned(16),
    7: _unsigned(32),
    8: _unsigned(64),
    9: _float,
    10: _float,
    11: _boolean,
    12: _text,
    13: _datetime,
    14: _text,
    15: _text,
    16: _dataset,
    17: _bytes,
    18: _bytes,
    19: _template,
    **{number: _packed(code) for number, code in _PACKED.items()},
    32: _boolean_array,
    33: _string_array,
    34: _datetime_array,
}


# -- topics --------------------------------------------------------------------------------
NAMESPACE = "spBv1.0"
# Message type → whether it is a device's.
_TYPES = {"NBIRTH": False, "NDATA": False, "NDEATH": False}
_TYPES |= {"DBIRTH": True, "DDATA": True, "DDEATH": True}
_NO_ROWS = {"NCMD", "DCMD", "STATE"}


class Topic(NamedTuple):
    topic: str
    group: str
    kind: str  # NBIRTH … DDEATH
    edge: str
    device: str | None

    @property
    def node(self) -> tuple[str, str]:
        return (self.group, self.edge)

    @property
    def label(self) -> str:
        """``group/edge_node`` or ``group/edge_node/device``, as events name it."""
        return "/".join(p for p in (self.group, self.edge, self.device) if p is not None)


def parse_topic(topic: str) -> Topic | None:
    """The levels of a Sparkplug topic; None for one without metrics (commands, STATE);
    ValueError for a topic that is not Sparkplug B."""
    parts = topic.split("/")
    if parts[0] != NAMESPACE:
        raise ValueError(f"topic {topic!r} is not a Sparkplug B topic ({NAMESPACE}/…)")
    if (len(parts) > 1 and parts[1] == "STATE") or (len(parts) > 2 and parts[2] in _NO_ROWS):
        return None
    kind = parts[2] if len(parts) > 2 else ""
    of_device = _TYPES.get(kind)
    if of_device is None:
        raise ValueError(f"topic {topic!r}: {kind!r} is no Sparkplug B message type")
    levels = 5 if of_device else 4
    if len(parts) != levels or not all(parts):
        shape = f"{NAMESPACE}/<group_id>/{kind}/<edge_node_id>" + ("/<device_id>" * of_device)
        raise ValueError(f"topic {topic!r}: a {kind} topic is {shape}")
    return Topic(topic, parts[1], kind, parts[3], parts[4] if of_device else None)
