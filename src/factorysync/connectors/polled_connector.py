"""The connector side every polled device type shares (Modbus TCP, Siemens S7).

A protocol module subclasses :class:`PolledDeviceConnector` and says only what differs:
how to make a connection to its device (``device``), its points (``points``), how to
import its driver (``load_driver``) and what a check read (``check_summary``). Reading
once for ``source test`` and ``source discover``, refusing one-off syncs and running the
poll loop (:class:`~factorysync.connectors.polled_device.PollLoop`) for the realtime
service are the same for every such type.
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from factorysync.connectors.base import Batch, Connector, FieldInfo, ReadRequest, Sink
from factorysync.connectors.polled_device import (
    Device,
    DeviceError,
    PointSpec,
    PollLoop,
    field_infos,
    iso_ms,
)
from factorysync.errors import ConnectorFatal, ConnectorRetriable


class PolledDeviceConnector(Connector):
    """A device polled by the realtime service; its config has ``device_name``, ``where``
    and ``poll_ms`` (:class:`~factorysync.connectors.polled_device.PolledDeviceConfig`)."""

    polls = False
    streams = True
    # What the source is, in the message that refuses a one-off sync ("a Siemens S7 PLC").
    device_kind: ClassVar[str]

    @abstractmethod
    def device(self) -> Device:
        """A new, not yet connected, connection to the device."""

    @abstractmethod
    def points(self) -> Sequence[PointSpec]:
        """The configured registers or tags."""

    @abstractmethod
    def load_driver(self) -> None:
        """Import the driver: a ConfigError with the install command when it is missing."""

    @abstractmethod
    def check_summary(self, device: Device) -> str:
        """What one read of every point took (after ``where``)."""

    def _read_once(self) -> tuple[dict[str, Any], Device]:
        """One poll's row, read on a connection of its own."""
        cfg: Any = self.config
        device = self.device()
        started = datetime.now(UTC)
        try:
            device.connect()
            values = device.read()
        except DeviceError as exc:
            error = ConnectorRetriable if exc.retriable else ConnectorFatal
            raise error(f"{cfg.where}: {exc}") from None
        finally:
            device.close()
        return {"ts": iso_ms(started), "device": cfg.device_name, **values}, device

    def _check(self) -> str:
        _, device = self._read_once()
        where: str = getattr(self.config, "where")  # noqa: B009 - every polled config has it
        return f"{where}: {self.check_summary(device)}"

    def discover(self, *, records_path: str | None = None, limit: int = 200) -> list[FieldInfo]:
        row, _ = self._read_once()
        return field_infos(row, self.points())

    @classmethod
    def unpolled_reason(cls, source_id: str) -> str:
        return (
            f"source {source_id!r} is {cls.device_kind}: it is polled continuously by the "
            "realtime service of 'factorysync run', not by one-off syncs ('factorysync "
            "source test' reads it once)"
        )

    def read(self, request: ReadRequest) -> Iterator[Batch]:
        raise ConnectorFatal(self.unpolled_reason(self.context.source_id))

    def subscribe(self, sink: Sink, stop: threading.Event) -> None:
        """Poll the device every ``poll_ms`` and hand each row to ``sink`` until ``stop``."""
        self.load_driver()  # a missing driver stops the source with the install command
        cfg: Any = self.config
        PollLoop(
            self.device(),
            name=cfg.device_name,
            where=cfg.where,
            period_s=cfg.poll_ms / 1000,
            deadbands={p.name: p.deadband for p in self.points() if p.deadband is not None},
            sink=sink,
            source_id=self.context.source_id,
        ).run(stop)
