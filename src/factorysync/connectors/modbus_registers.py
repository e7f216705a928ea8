"""The registers of a Modbus device: how they are declared, read in as few requests as the
protocol allows, and decoded (see :mod:`factorysync.connectors.modbus` for the connection
type that polls them).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from factorysync.connectors.polled_device import (
    PointSpec,
    PolledDeviceConfig,
    plc_text,
    unique_names,
)

RegisterKind = Literal["holding", "input", "coil", "discrete"]
RegisterType = Literal[
    "int16", "uint16", "int32", "uint32", "int64", "float32", "float64", "bool", "string"
]
BIT_KINDS = ("coil", "discrete")
MAX_REGISTERS = 125  # per read of holding or input registers (function codes 3, 4)
MAX_BITS = 2000  # per read of coils or discrete inputs (function codes 1, 2)
# Registers per value, and its struct code (big-endian).
WIDTH = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2, "int64": 4, "float64": 4}
STRUCT = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "float32": "f"}
STRUCT |= {"int64": "q", "float64": "d"}
READ_METHOD = {
    "holding": "read_holding_registers",
    "input": "read_input_registers",
    "coil": "read_coils",
    "discrete": "read_discrete_inputs",
}
KIND_NAMES = {
    "holding": "holding registers",
    "input": "input registers",
    "coil": "coils",
    "discrete": "discrete inputs",
}


class RegisterSpec(PointSpec):
    """One value of the device: a register (or several), a coil or a discrete input."""

    address: int = Field(
        ge=0,
        le=65535,
        description="Protocol address of the (first) register or bit, from 0: "
        "a manual's 40001 is holding register 0.",
    )
    kind: RegisterKind = Field(
        default="holding",
        description="Register table: holding (function 3), input (4), coil (1) or "
        "discrete (2) input.",
    )
    type: RegisterType | None = Field(
        default=None,
        description="How the registers are decoded (default uint16; coils and discrete "
        "inputs are bool). bool on a holding or input register reads one of its bits.",
    )
    count: int | None = Field(
        default=None,
        ge=1,
        le=MAX_REGISTERS,
        description="Strings only (required): registers the string occupies, two characters each.",
    )
    bit: int | None = Field(
        default=None,
        ge=0,
        le=15,
        description="bool on a holding or input register (required): the bit, 0 the least "
        "significant.",
    )
    word_order: Literal["big", "little"] = Field(
        default="big",
        description="32- and 64-bit types: big reads the high word from the first "
        "register, little from the last.",
    )
    byte_order: Literal["big", "little"] = Field(
        default="big",
        description="Bytes within each register: big is the Modbus standard, little swaps "
        "them (also the two characters of a string register).",
    )

    what: ClassVar[str] = "register"

    def settle(self) -> None:
        if self.kind in BIT_KINDS:
            if self.type not in (None, "bool"):
                raise ValueError(
                    f"type {self.type!r} does not fit kind {self.kind!r}: "
                    "coils and discrete inputs are bool"
                )
            self.type = "bool"
            for option in ("count", "bit"):
                if getattr(self, option) is not None:
                    raise ValueError(f"{option} does not apply to {KIND_NAMES[self.kind]}")
            if "little" in (self.word_order, self.byte_order):
                raise ValueError("word_order and byte_order do not apply to single bits")
        else:
            self.type = self.type or "uint16"
            if (self.type == "string") != (self.count is not None):
                raise ValueError("count is required for strings and only for strings")
            if (self.type == "bool") != (self.bit is not None):
                raise ValueError("bit (0-15) is required for bool on a register, and only then")
            if self.word_order == "little" and WIDTH.get(self.type, 1) == 1:
                raise ValueError("word_order applies to 32- and 64-bit types only")
            if self.type == "bool" and self.byte_order == "little":
                raise ValueError("byte_order does not apply to a bit (number it 0-15)")
        if self.address + self.width - 1 > 65535:
            raise ValueError(f"address {self.address} + {self.width} register(s) runs past 65535")
        self.check_numeric_options()

    @property
    def width(self) -> int:
        """Registers (or bits) the value occupies."""
        if self.type == "string":
            return self.count or 1
        return WIDTH.get(self.type or "", 1)

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
        return "float" if scaled or (self.type or "").startswith("float") else "integer"


class ModbusConfig(PolledDeviceConfig):
    """``connection_config`` of a Modbus TCP source."""

    device: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Name stamped on every row in the 'device' column "
        "(default: host:port/unit_id, e.g. 10.20.1.15:502/1).",
    )
    port: int = Field(
        title="Port",
        examples=[502],
        json_schema_extra={"group": "connection"},
        default=502,
        ge=1,
        le=65535,
        description="TCP port of the device.",
    )
    unit_id: int = Field(
        title="Unit id",
        examples=[1],
        json_schema_extra={"group": "connection"},
        default=1,
        ge=0,
        le=255,
        description="Modbus unit (slave) id; behind a gateway, the serial device's address.",
    )
    registers: list[RegisterSpec] = Field(
        title="Registers",
        json_schema_extra={"group": "connection"},
        min_length=1,
        description="The values to read, one column each.",
    )
    max_gap: int = Field(
        default=8,
        ge=0,
        le=MAX_BITS,
        description="Unconfigured addresses one request may span to join two ranges of "
        "the same kind; 0 for devices that refuse reads across addresses they lack.",
    )
    max_registers_per_read: int = Field(
        default=MAX_REGISTERS,
        ge=1,
        le=MAX_REGISTERS,
        description="Registers one request may read (the protocol allows 125; some devices fewer).",
    )
    max_bits_per_read: int = Field(
        default=MAX_BITS,
        ge=1,
        le=MAX_BITS,
        description="Coils or discrete inputs one request may read (the protocol allows 2000).",
    )

    @model_validator(mode="after")
    def _registers(self) -> ModbusConfig:
        unique_names(self.registers, "register")
        too_wide = [
            r.name
            for r in self.registers
            if r.kind not in BIT_KINDS and r.width > self.max_registers_per_read
        ]
        if too_wide:
            raise ValueError(
                f"register(s) {', '.join(too_wide)} span more than max_registers_per_read "
                f"({self.max_registers_per_read})"
            )
        return self

    @property
    def device_name(self) -> str:
        return self.device or f"{self.host}:{self.port}/{self.unit_id}"

    @property
    def where(self) -> str:
        return f"Modbus TCP {self.host}:{self.port} unit {self.unit_id}"


# -- requests ------------------------------------------------------------------------------
@dataclass
class ModbusRead:
    """One request: ``count`` registers (or bits) of ``kind`` from ``start``."""

    kind: str
    start: int
    count: int
    registers: list[RegisterSpec] = field(default_factory=list)

    @property
    def spans_gaps(self) -> bool:
        """Whether the request also reads addresses no register of it has."""
        used = {a for r in self.registers for a in range(r.address, r.address + r.width)}
        return len(used) < self.count

    def __str__(self) -> str:
        names = [r.name for r in self.registers]
        shown = ", ".join(names[:4]) + (", …" if len(names) > 4 else "")
        last = self.start + self.count - 1
        span = str(self.start) if last == self.start else f"{self.start}-{last}"
        return f"{KIND_NAMES[self.kind]} {span} ({shown})"


def plan_reads(cfg: ModbusConfig) -> list[ModbusRead]:
    """The requests one poll makes (see the module docstring), in kind order."""
    reads: list[ModbusRead] = []
    for kind in READ_METHOD:
        limit = cfg.max_bits_per_read if kind in BIT_KINDS else cfg.max_registers_per_read
        current: ModbusRead | None = None
        for reg in sorted((r for r in cfg.registers if r.kind == kind), key=lambda r: r.address):
            end = reg.address + reg.width
            if current is not None:
                current_end = current.start + current.count
                grown = max(current_end, end) - current.start
                if reg.address - current_end <= cfg.max_gap and grown <= limit:
                    current.count = grown
                    current.registers.append(reg)
                    continue
            current = ModbusRead(kind, reg.address, reg.width, [reg])
            reads.append(current)
    return reads


# -- decoding ------------------------------------------------------------------------------
def register_bytes(words: list[int], word_order: str, byte_order: str) -> bytes:
    ordered = words if word_order == "big" else list(reversed(words))
    order: Literal["big", "little"] = "big" if byte_order == "big" else "little"
    return b"".join((w & 0xFFFF).to_bytes(2, order) for w in ordered)


def text_of(data: bytes) -> str:
    """Characters of a PLC string: up to the first NUL byte, trailing spaces removed;
    UTF-8, or Latin-1 where the bytes are not valid UTF-8."""
    return plc_text(data.split(b"\x00", 1)[0].rstrip(b" "))


def decode_registers(reg: RegisterSpec, words: list[int]) -> Any:
    """The value of ``reg`` from its registers (as many as ``reg.width``)."""
    if reg.type == "bool":
        return bool((words[0] >> (reg.bit or 0)) & 1)
    if reg.type == "string":
        return text_of(register_bytes(words, "big", reg.byte_order))
    data = register_bytes(words, reg.word_order, reg.byte_order)
    return reg.scaled(struct.unpack(">" + STRUCT[reg.type or "uint16"], data)[0])


def decode_answer(read: ModbusRead, data: list[Any]) -> dict[str, Any]:
    """Every register of ``read`` from the answer's registers or bits."""
    values = {}
    for reg in read.registers:
        at = reg.address - read.start
        if read.kind in BIT_KINDS:
            values[reg.name] = bool(data[at])
        else:
            values[reg.name] = decode_registers(reg, [int(w) for w in data[at : at + reg.width]])
    return values
