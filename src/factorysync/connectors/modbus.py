"""Modbus TCP sources: registers of a PLC or meter, polled on a fixed schedule.

This module holds the connector (the ``connection_config`` model, how the registers are
grouped into requests and how their values are decoded are in
:mod:`factorysync.connectors.modbus_registers`): ``check`` (connect and read
every register once), ``discover`` (the row of one poll, described) and ``subscribe``
(the poll loop of :mod:`factorysync.connectors.polled_device`, for the realtime
service). The driver is pymodbus (``pip install 'factorysync[modbus]'``), imported on
first use.

``connection_config``::

    host: 10.20.1.15          # required
    port: 502
    unit_id: 1                # the Modbus unit (slave) id
    poll_ms: 1000
    device: press-7           # stamped on every row (default host:port/unit)
    registers:
      - {name: ram_force_kn, address: 0, type: float32, word_order: little}
      - {name: strokes_total, address: 2, type: uint32}
      - {name: die_temp_c, address: 4, kind: input, type: int16, scale: 0.1,
         deadband: {absolute: 0.5}}
      - {name: recipe, address: 20, type: string, count: 8}   # 8 registers, 16 characters
      - {name: running, address: 0, kind: coil}

One row per poll: ``{"ts": ..., "device": "press-7", "ram_force_kn": 812.5, ...}``.

Addresses are the protocol's, from 0 (a manual's "40001" is holding register 0).
Requests: the registers of one kind are sorted by address and read as ranges, a range
growing while the next register starts at most ``max_gap`` addresses after it ends and
the range stays within ``max_registers_per_read`` registers (125, the protocol's limit)
or ``max_bits_per_read`` coils/discrete inputs (2000). Going left to right, this gives
the fewest requests those two limits allow. A device that refuses reads spanning
addresses it does not have (exception 2, illegal data address) needs ``max_gap: 0``.

Decoding: a value's registers, high word first (``word_order: little`` reverses them),
each register's two bytes high byte first (``byte_order: little`` swaps them), read as
a big-endian number; numbers then become raw × ``scale`` + ``offset``. A string is
``count`` registers of two characters each, cut at the first NUL byte, trailing spaces
removed (UTF-8, or Latin-1 where the bytes are not valid UTF-8). A float that is not a
number becomes null.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import socket
from collections.abc import Sequence
from typing import Any, ClassVar

from factorysync.connectors.base import (
    SourceKind,
)
from factorysync.connectors.modbus_registers import (
    BIT_KINDS,
    READ_METHOD,
    ModbusConfig,
    ModbusRead,
    decode_answer,
    plan_reads,
)
from factorysync.connectors.polled_connector import PolledDeviceConnector
from factorysync.connectors.polled_device import (
    Device,
    DeviceError,
    PointSpec,
)
from factorysync.errors import ConfigError

INSTALL = "pip install 'factorysync[modbus]'"
EXCEPTION_CODES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge (busy with a long operation)",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}
TRANSIENT_CODES = frozenset({5, 6, 10, 11})  # the device (or its gateway) may answer later


def pymodbus_client() -> Any:
    """The ``pymodbus.client`` module (imported on first use).

    pymodbus logs every failed connection and unanswered request itself, at ERROR and
    with frame dumps; factorysync reports the same failures once, naming the source and
    the registers. So pymodbus' logger is kept quiet, unless it was given a level."""
    try:
        import pymodbus.client as module
    except ImportError:
        raise ConfigError(f"Modbus sources need the pymodbus package: {INSTALL}") from None
    driver_log = logging.getLogger("pymodbus")
    if driver_log.level == logging.NOTSET:
        driver_log.setLevel(logging.CRITICAL)
    return module


# -- the device ----------------------------------------------------------------------------
class ModbusDevice:
    """One Modbus TCP connection (pymodbus' synchronous client) and the poll's requests."""

    def __init__(self, cfg: ModbusConfig) -> None:
        self.cfg = cfg
        self.reads = plan_reads(cfg)
        self.client: Any = None
        self._unit: dict[str, int] = {}

    def connect(self) -> None:
        module = pymodbus_client()
        cfg = self.cfg
        client = module.ModbusTcpClient(cfg.host, port=cfg.port, timeout=cfg.timeout, retries=0)
        if not client.connect():
            client.close()
            raise DeviceError(f"cannot connect: {unreachable(cfg.host, cfg.port, cfg.timeout)}")
        # pymodbus 3.10 renamed the unit id argument (slave → device_id).
        params = inspect.signature(client.read_coils).parameters
        self._unit = {"device_id" if "device_id" in params else "slave": cfg.unit_id}
        self.client = client

    def read(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for read in self.reads:
            values.update(decode_answer(read, self._ask(read)))
        return {r.name: values[r.name] for r in self.cfg.registers}

    def _ask(self, read: ModbusRead) -> list[Any]:
        method = getattr(self.client, READ_METHOD[read.kind])
        try:
            answer = method(read.start, count=read.count, **self._unit)
        except Exception as exc:  # whatever the client raises: no usable answer
            raise DeviceError(f"no answer reading {read}: {self._failure(exc)}") from None
        if answer.isError():
            code = getattr(answer, "exception_code", None)
            meaning = EXCEPTION_CODES.get(code or 0, "unknown exception")
            hint = ""
            if code == 2 and read.spans_gaps:
                hint = (
                    "; the request also spans addresses between configured registers: "
                    "set max_gap: 0 if the device has none there"
                )
            raise DeviceError(
                f"the device refused reading {read}: exception {code} ({meaning}){hint}",
                retriable=code in TRANSIENT_CODES,
            )
        data = answer.bits if read.kind in BIT_KINDS else answer.registers
        if len(data) < read.count:
            raise DeviceError(
                f"short answer reading {read}: {len(data)} of {read.count} value(s)",
                retriable=False,
            )
        return list(data)

    def _failure(self, exc: Exception) -> str:
        kind = type(exc).__name__
        if kind == "ModbusIOException":
            return f"no response within {self.cfg.timeout:g} s"
        if kind == "ConnectionException":
            return "the connection was closed"
        return f"{kind}: {exc}"

    def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):  # closing a dead connection
                self.client.close()
            self.client = None


def unreachable(host: str, port: int, timeout: float) -> str:
    """Why a TCP connection to ``host:port`` fails, in a few words (the driver only says
    that it failed)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return "the connection failed"
    except socket.gaierror:
        return f"unknown host {host!r}"
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except ConnectionRefusedError:
        return f"connection refused on port {port}"
    except OSError as exc:
        return exc.strerror or str(exc)


# -- the connection type -------------------------------------------------------------------
PRESS_REGISTERS: list[dict[str, Any]] = [
    {"name": "ram_force_kn", "address": 0, "type": "float32", "deadband": {"absolute": 0.5}},
    {"name": "strokes_total", "address": 2, "type": "uint32"},
    {"name": "strokes_per_min", "address": 4, "type": "uint16"},
    {"name": "die_temp_c", "address": 0, "kind": "input", "type": "int16", "scale": 0.1},
    {"name": "hydraulic_bar", "address": 1, "kind": "input", "type": "uint16", "scale": 0.1},
    {"name": "die_id", "address": 20, "type": "string", "count": 8},
    {"name": "running", "address": 0, "kind": "coil"},
    {"name": "light_curtain_ok", "address": 0, "kind": "discrete"},
]


class ModbusConnector(PolledDeviceConnector):
    """Connection check, field discovery and the poll loop of Modbus TCP sources."""

    type_name = "modbus"
    config_model = ModbusConfig
    source_types = (
        SourceKind(
            "modbus",
            "Modbus TCP",
            "MB",
            "indigo",
            summary="Registers of a Modbus TCP device, polled and written as they change.",
        ),
    )
    templates: ClassVar[list[dict[str, Any]]] = [
        {
            "template_name": "press_modbus",
            "display_name": "Press line PLC (Modbus TCP)",
            "description": "Force, stroke counter, die temperature and state of a press "
            "line's PLC, polled every second; one row per poll (ts, device, registers).",
            "source_type": "modbus",
            "connection_config": {
                "host": "10.20.1.15",
                "port": 502,
                "unit_id": 1,
                "poll_ms": 1000,
                "device": "press-7",
                "registers": PRESS_REGISTERS,
            },
            "mapping_config": {"primary_key": ["device", "ts"]},
        }
    ]
    extra = "modbus"
    device_kind = "a Modbus TCP device"

    @property
    def cfg(self) -> ModbusConfig:
        assert isinstance(self.config, ModbusConfig)
        return self.config

    def device(self) -> ModbusDevice:
        return ModbusDevice(self.cfg)

    def points(self) -> Sequence[PointSpec]:
        return self.cfg.registers

    def load_driver(self) -> None:
        pymodbus_client()

    def check_summary(self, device: Device) -> str:
        assert isinstance(device, ModbusDevice)
        return f"{len(self.cfg.registers)} register(s) read in {len(device.reads)} request(s)"
