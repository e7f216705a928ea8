"""Siemens S7 sources: tags of a PLC's data blocks, markers, inputs and outputs, polled
on a fixed schedule.

This module holds the ``connection_config`` model, how the tags are grouped into
requests, how their values are decoded, and the connector: ``check`` (connect and read
every tag once), ``discover`` (the row of one poll, described) and ``subscribe`` (the
poll loop of :mod:`factorysync.connectors.polled_device`, for the realtime service). The
driver is python-snap7's pure-Python client (``pip install 'factorysync[s7]'``),
imported on first use. S7-1200 and S7-1500 CPUs answer it only with PUT/GET access
allowed and the blocks read not "optimized" (absolute addresses).

``connection_config``::

    host: 10.20.1.20          # required
    rack: 0
    slot: 1                   # S7-300: 2; S7-1200/1500: 1
    poll_ms: 1000
    device: press-7
    tags:
      - {name: cycle_count, area: DB, db: 10, start: 0, type: dint}
      - {name: ram_force_kn, area: DB, db: 10, start: 4, type: real, deadband: {absolute: 0.5}}
      - {name: running, area: DB, db: 10, start: 12, bit: 0, type: bool}
      - {name: die_id, area: DB, db: 10, start: 14, type: string, length: 16}
      - {name: main_motor_on, area: Q, start: 0, bit: 0, type: bool}

One row per poll: ``{"ts": ..., "device": "press-7", "cycle_count": 18231, ...}``.

Requests: the tags of one area (and data block) are sorted by start byte and read as
byte ranges, a range growing while the next tag starts at most ``max_gap`` bytes after
it ends and the range still fits one answer of the PDU size the PLC negotiated (462
bytes of data for the usual 480). The ranges are then packed, in that order, into
multi-variable reads of up to 20 ranges each as long as request and answer fit the PDU
(python-snap7's ``read_multi_vars``), so that a poll of a few areas is one exchange.

Decoding: S7 values are big-endian: ``int`` 16-bit signed, ``word`` 16-bit unsigned,
``dint``/``dword`` 32-bit, ``real`` 32-bit float, ``lreal`` 64-bit float, ``byte``
unsigned; ``bool`` is bit ``bit`` (0-7) of the byte at ``start``. A ``string`` is the
S7 STRING[``length``]: a byte with the maximum length, a byte with the actual length,
then the characters (``length`` + 2 bytes in all). Numbers then become raw × ``scale``
+ ``offset``.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from factorysync.connectors.base import (
    SourceKind,
)
from factorysync.connectors.polled_connector import PolledDeviceConnector
from factorysync.connectors.polled_device import (
    Device,
    DeviceError,
    PointSpec,
    PolledDeviceConfig,
    plc_text,
    unique_names,
)
from factorysync.errors import ConfigError

INSTALL = "pip install 'factorysync[s7]'"
S7Area = Literal["DB", "M", "I", "Q"]
TagType = Literal["bool", "byte", "int", "dint", "word", "dword", "real", "lreal", "string"]
AREAS = ("DB", "M", "I", "Q")  # the order requests are made in
AREA_NAMES = {"DB": "DB", "M": "markers", "I": "inputs", "Q": "outputs"}
# python-snap7's names of the areas (process inputs PE, outputs PA, markers MK).
DRIVER_AREA = {"DB": "DB", "M": "MK", "I": "PE", "Q": "PA"}
SIZE = {"bool": 1, "byte": 1, "int": 2, "word": 2, "dint": 4, "dword": 4, "real": 4, "lreal": 8}
STRUCT = {"byte": "B", "int": "h", "word": "H", "dint": "i", "dword": "I", "real": "f"}
STRUCT["lreal"] = "d"
MAX_ITEMS = 20  # variables one multi-variable read may carry
# Bytes of a read PDU besides the data: 12 header + 2 parameters, and per range 12 in
# the request (address) and 4 in the answer (item header; data padded to even length).
PDU_OVERHEAD = 14
REQUEST_ITEM = 12
ANSWER_ITEM = 4
DEFAULT_PDU = 240  # the smallest PDU S7 CPUs negotiate


def snap7_module() -> Any:
    """The ``snap7`` package (imported on first use)."""
    try:
        import snap7 as module
    except ImportError:
        raise ConfigError(f"S7 sources need the python-snap7 package: {INSTALL}") from None
    return module


class TagSpec(PointSpec):
    """One value of the PLC: a variable of a data block, or of the marker, input or
    output area."""

    area: S7Area = Field(
        default="DB",
        description="Memory area: DB (a data block), M (markers), I (inputs) or Q (outputs).",
    )
    db: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Number of the data block (area DB only, required there).",
    )
    start: int = Field(ge=0, le=65535, description="Byte offset of the value in its area.")
    bit: int | None = Field(
        default=None,
        ge=0,
        le=7,
        description="bool only (required): the bit of the byte at start, 0-7.",
    )
    type: TagType = Field(
        description="bool, byte, int (16-bit), dint (32-bit), word, dword, real (32-bit "
        "float), lreal (64-bit float) or string (S7 STRING)."
    )
    length: int | None = Field(
        default=None,
        ge=1,
        le=254,
        description="string only: the declared length n of STRING[n] (default 254); the "
        "tag takes n + 2 bytes.",
    )

    what: ClassVar[str] = "tag"

    def settle(self) -> None:
        if (self.area == "DB") != (self.db is not None):
            raise ValueError("db is required for area DB and only for it")
        if (self.type == "bool") != (self.bit is not None):
            raise ValueError("bit (0-7) is required for bool and only for bool")
        if self.length is not None and self.type != "string":
            raise ValueError("length applies to strings only")
        if self.type == "string" and self.length is None:
            self.length = 254
        if self.start + self.size > 65536:
            raise ValueError(f"start {self.start} + {self.size} byte(s) runs past 65535")
        self.check_numeric_options()

    @property
    def size(self) -> int:
        return (self.length or 254) + 2 if self.type == "string" else SIZE[self.type]

    @property
    def numeric(self) -> bool:
        return self.type not in ("bool", "string")

    @property
    def column_kind(self) -> str:
        if self.type == "bool":
            return "boolean"
        if self.type == "string":
            return "string"
        scaled = self.scale != 1.0 or self.offset != 0.0
        return "float" if scaled or self.type in ("real", "lreal") else "integer"

    @property
    def region(self) -> tuple[int, int]:
        """(area order, data block): tags of one region may share a read."""
        return AREAS.index(self.area), self.db or 0


class S7Config(PolledDeviceConfig):
    """``connection_config`` of a Siemens S7 source."""

    device: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Name stamped on every row in the 'device' column "
        "(default: host:port/rack/slot, e.g. 10.20.1.20:102/0/1).",
    )
    timeout: float = Field(
        default=3.0,
        gt=0,
        le=60,
        description="Seconds to wait for each answer (connecting waits up to the "
        "driver's own 5 s).",
    )
    port: int = Field(
        title="Port",
        examples=[102],
        default=102,
        ge=1,
        le=65535,
        description="TCP port (ISO-on-TCP).",
    )
    rack: int = Field(
        title="Rack",
        examples=[0],
        json_schema_extra={"group": "connection"},
        default=0,
        ge=0,
        le=7,
        description="Rack of the CPU.",
    )
    slot: int = Field(
        title="Slot",
        examples=[1],
        json_schema_extra={"group": "connection"},
        default=1,
        ge=0,
        le=31,
        description="Slot of the CPU: 2 on an S7-300, 1 on an S7-1200/1500 (also 0 on some).",
    )
    tags: list[TagSpec] = Field(
        title="Tags",
        json_schema_extra={"group": "connection"},
        min_length=1,
        description="The values to read, one column each.",
    )
    max_gap: int = Field(
        default=16,
        ge=0,
        le=1024,
        description="Bytes between two tags of one area (or data block) that one read may "
        "span to read both at once.",
    )

    @model_validator(mode="after")
    def _tags(self) -> S7Config:
        unique_names(self.tags, "tag")
        return self

    @property
    def device_name(self) -> str:
        return self.device or f"{self.host}:{self.port}/{self.rack}/{self.slot}"

    @property
    def where(self) -> str:
        return f"S7 {self.host}:{self.port} rack {self.rack} slot {self.slot}"


# -- requests ------------------------------------------------------------------------------
@dataclass
class S7Range:
    """Bytes ``start`` … ``start + size - 1`` of one area (and data block)."""

    area: str
    db: int
    start: int
    size: int
    tags: list[TagSpec] = field(default_factory=list)

    def __str__(self) -> str:
        names = [t.name for t in self.tags]
        shown = ", ".join(names[:4]) + (", …" if len(names) > 4 else "")
        where = f"DB{self.db}" if self.area == "DB" else AREA_NAMES[self.area]
        last = self.start + self.size - 1
        span = f"byte {self.start}" if last == self.start else f"bytes {self.start}-{last}"
        return f"{where} {span} ({shown})"


def plan_ranges(tags: list[TagSpec], max_gap: int, max_bytes: int) -> list[S7Range]:
    """Byte ranges covering ``tags`` (see the module docstring); a tag larger than
    ``max_bytes`` (a long string on a small PDU) gets a range of its own."""
    ranges: list[S7Range] = []
    current: S7Range | None = None
    for tag in sorted(tags, key=lambda t: (t.region, t.start)):
        end = tag.start + tag.size
        if current is not None and (AREAS.index(current.area), current.db) == tag.region:
            current_end = current.start + current.size
            grown = max(current_end, end) - current.start
            if tag.start - current_end <= max_gap and grown <= max_bytes:
                current.size = grown
                current.tags.append(tag)
                continue
        current = S7Range(tag.area, tag.db or 0, tag.start, tag.size, [tag])
        ranges.append(current)
    return ranges


def pack_requests(ranges: list[S7Range], pdu: int) -> list[list[S7Range]]:
    """The ranges in as few reads as fit ``pdu``: in order, a read takes the next range
    while it holds fewer than 20 and its request and answer still fit."""
    requests: list[list[S7Range]] = []
    current: list[S7Range] = []
    asked = answered = PDU_OVERHEAD
    for rng in ranges:
        cost = ANSWER_ITEM + rng.size + rng.size % 2
        fits = len(current) < MAX_ITEMS and asked + REQUEST_ITEM <= pdu and answered + cost <= pdu
        if current and not fits:
            requests.append(current)
            current, asked, answered = [], PDU_OVERHEAD, PDU_OVERHEAD
        current.append(rng)
        asked += REQUEST_ITEM
        answered += cost
    if current:
        requests.append(current)
    return requests


def max_range_bytes(pdu: int) -> int:
    """Data bytes one range may have to be answered in one PDU."""
    return pdu - PDU_OVERHEAD - ANSWER_ITEM


# -- decoding ------------------------------------------------------------------------------
def decode_tag(tag: TagSpec, data: bytes) -> Any:
    """The value of ``tag`` from its ``tag.size`` bytes."""
    if tag.type == "bool":
        return bool((data[0] >> (tag.bit or 0)) & 1)
    if tag.type == "string":
        # The actual length byte is trusted only as far as the declared length goes.
        actual = min(data[1], tag.length or 254, len(data) - 2)
        return plc_text(bytes(data[2 : 2 + actual]))
    return tag.scaled(struct.unpack(">" + STRUCT[tag.type], data[: tag.size])[0])


def decode_range(rng: S7Range, data: bytes) -> dict[str, Any]:
    return {t.name: decode_tag(t, data[t.start - rng.start :]) for t in rng.tags}


# -- the device ----------------------------------------------------------------------------
class S7Device:
    """One connection to the PLC (python-snap7's client) and the poll's requests, planned
    for the PDU size the PLC negotiated."""

    def __init__(self, cfg: S7Config) -> None:
        self.cfg = cfg
        self.client: Any = None
        self.requests: list[list[S7Range]] = []
        self._areas: dict[str, Any] = {}

    def connect(self) -> None:
        snap7 = snap7_module()
        cfg = self.cfg
        client = snap7.Client()
        try:
            client.connect(cfg.host, cfg.rack, cfg.slot, tcp_port=cfg.port)
        except Exception as exc:  # the driver's connection errors, OSError
            self._close(client)
            raise DeviceError(f"cannot connect: {exc}") from None
        # One request in flight at a time (the driver may pipeline several), and no
        # merging of the planned ranges beyond max_gap.
        client.max_parallel = 1
        client.multi_read_max_gap = cfg.max_gap
        connection = getattr(client, "connection", None)
        if connection is not None and getattr(connection, "socket", None) is not None:
            connection.timeout = cfg.timeout
            connection.socket.settimeout(cfg.timeout)
        pdu = int(getattr(client, "pdu_length", 0) or DEFAULT_PDU)
        ranges = plan_ranges(cfg.tags, cfg.max_gap, max_range_bytes(pdu))
        self.requests = pack_requests(ranges, pdu)
        self._areas = {name: getattr(snap7.Area, DRIVER_AREA[name]) for name in AREAS}
        self.client = client

    def read(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for request in self.requests:
            for rng, data in zip(request, self._ask(request), strict=True):
                if len(data) < rng.size:
                    raise DeviceError(
                        f"short answer reading {rng}: {len(data)} of {rng.size} byte(s)",
                        retriable=False,
                    )
                values.update(decode_range(rng, bytes(data)))
        return {t.name: values[t.name] for t in self.cfg.tags}

    def _ask(self, request: list[S7Range]) -> list[Any]:
        items = [
            {"area": self._areas[r.area], "db_number": r.db, "start": r.start, "size": r.size}
            for r in request
        ]
        what = str(request[0]) if len(request) == 1 else f"{len(request)} ranges ({request[0]} …)"
        try:
            if len(items) == 1:
                one = items[0]
                return [
                    self.client.read_area(one["area"], one["db_number"], one["start"], one["size"])
                ]
            _, data = self.client.read_multi_vars(items)
            return list(data)
        except Exception as exc:
            kind = type(exc).__name__
            if kind == "S7ProtocolError":
                raise DeviceError(
                    f"the PLC refused reading {what}: {exc}{_hint(str(exc))}", retriable=False
                ) from None
            if kind == "S7TimeoutError":
                raise DeviceError(
                    f"no response within {self.cfg.timeout:g} s reading {what}"
                ) from None
            raise DeviceError(f"no answer reading {what}: {exc}") from None

    @staticmethod
    def _close(client: Any) -> None:
        with contextlib.suppress(Exception):  # closing a dead connection
            client.disconnect()

    def close(self) -> None:
        if self.client is not None:
            self._close(self.client)
            self.client = None


def _hint(message: str) -> str:
    if "(0x0a)" in message or "(0x03)" in message:
        return (
            " (a data block that does not exist, or one an S7-1200/1500 will not serve: "
            "allow PUT/GET access and switch off optimized block access)"
        )
    if "(0x05)" in message:
        return " (the address is past the end of the area or data block)"
    return ""


# -- the connection type -------------------------------------------------------------------
PRESS_TAGS: list[dict[str, Any]] = [
    {"name": "cycle_count", "area": "DB", "db": 10, "start": 0, "type": "dint"},
    {
        "name": "ram_force_kn",
        "area": "DB",
        "db": 10,
        "start": 4,
        "type": "real",
        "deadband": {"absolute": 0.5},
    },
    {"name": "die_temp_c", "area": "DB", "db": 10, "start": 8, "type": "real"},
    {"name": "running", "area": "DB", "db": 10, "start": 12, "bit": 0, "type": "bool"},
    {"name": "fault", "area": "DB", "db": 10, "start": 12, "bit": 1, "type": "bool"},
    {"name": "die_id", "area": "DB", "db": 10, "start": 14, "type": "string", "length": 16},
    {"name": "main_motor_on", "area": "Q", "start": 0, "bit": 0, "type": "bool"},
]


class S7Connector(PolledDeviceConnector):
    """Connection check, field discovery and the poll loop of Siemens S7 sources."""

    type_name = "s7"
    config_model = S7Config
    source_types = (
        SourceKind(
            "s7",
            "Siemens S7",
            "S7",
            "cyan",
            summary="Tags of a Siemens S7 PLC, polled and written as they change.",
        ),
    )
    templates: ClassVar[list[dict[str, Any]]] = [
        {
            "template_name": "press_s7",
            "display_name": "Press line PLC (Siemens S7)",
            "description": "Cycle counter, force, die temperature and state from data "
            "block DB10 of a press line's S7 CPU, polled every second; one row per poll.",
            "source_type": "s7",
            "connection_config": {
                "host": "10.20.1.20",
                "rack": 0,
                "slot": 1,
                "poll_ms": 1000,
                "device": "press-7",
                "tags": PRESS_TAGS,
            },
            "mapping_config": {"primary_key": ["device", "ts"]},
        }
    ]
    extra = "s7"
    device_kind = "a Siemens S7 PLC"

    @property
    def cfg(self) -> S7Config:
        assert isinstance(self.config, S7Config)
        return self.config

    def device(self) -> S7Device:
        return S7Device(self.cfg)

    def points(self) -> Sequence[PointSpec]:
        return self.cfg.tags

    def load_driver(self) -> None:
        snap7_module()

    def check_summary(self, device: Device) -> str:
        assert isinstance(device, S7Device)
        return f"{len(self.cfg.tags)} tag(s) read in {len(device.requests)} request(s)"
