"""PLC simulators on loopback for the Modbus TCP and S7 tests: a pymodbus server and the
python-snap7 server, each counting the read requests it answers, each able to stop and
start again on the same port; and a device that answers with malformed frames."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

from tests.realtime.conftest import free_port, reachable
from tests.waiting import PATIENCE, wait_until

# -- Modbus TCP -----------------------------------------------------------------------------
READ_CODES = {1: "coil", 2: "discrete", 3: "holding", 4: "input"}
BLOCK = {"coil": 0, "discrete": 1, "holding": 2, "input": 3}
REGISTERS = 256  # holding and input registers 0-255
BITS = 256  # coils and discrete inputs 0-255


class ModbusServer:
    """A pymodbus TCP server run by an event loop in a thread of its own.

    The register tables live in ``memory`` (what the test sets); the server's datastore
    takes them over whenever a request arrives (the device's ``action`` hook), so a value
    set between two polls is what the next poll reads. ``requests`` lists every read
    request as (kind, address, count); ``refuse`` makes every request answer with that
    Modbus exception code."""

    def __init__(self) -> None:
        self.port = free_port()
        self.memory: dict[str, list[int]] = {
            "holding": [0] * REGISTERS,
            "input": [0] * REGISTERS,
            "coil": [0] * BITS,
            "discrete": [0] * BITS,
        }
        self.requests: list[tuple[str, int, int]] = []
        self.refuse: int | None = None
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: Any = None

    def _call(self, coro: Any) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(PATIENCE)

    # -- the datastore ----------------------------------------------------------------
    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        values: Any,
    ) -> Any:
        kind = READ_CODES.get(function_code)
        if kind is None:
            return None
        with self.lock:
            if self.refuse is not None:
                from pymodbus.constants import ExcCodes

                return ExcCodes(self.refuse)
            memory = self.memory[kind]
            if kind in ("coil", "discrete"):
                packed = [
                    sum(1 << b for b in range(16) if memory[16 * r + b]) for r in range(BITS // 16)
                ]
                registers[: len(packed)] = packed
            else:
                registers[: len(memory)] = memory
        return None

    def _trace(self, sending: bool, pdu: Any) -> Any:
        if not sending and pdu.function_code in READ_CODES:
            with self.lock:
                self.requests.append((READ_CODES[pdu.function_code], pdu.address, pdu.count))
        return pdu

    async def _start(self) -> None:
        from pymodbus.server import ModbusTcpServer
        from pymodbus.simulator import DataType, SimData, SimDevice

        blocks = (
            [SimData(0, count=BITS, values=False, datatype=DataType.BITS)],
            [SimData(0, count=BITS, values=False, datatype=DataType.BITS)],
            [SimData(0, count=REGISTERS, values=0, datatype=DataType.REGISTERS)],
            [SimData(0, count=REGISTERS, values=0, datatype=DataType.REGISTERS)],
        )
        device = SimDevice(id=0, simdata=blocks, action=self._action)
        self.server = ModbusTcpServer(
            device, address=("127.0.0.1", self.port), trace_pdu=self._trace
        )
        await self.server.serve_forever(background=True)

    def start(self, *, new_port_if_taken: bool = False) -> None:
        """Listen (again) on ``port``; on a first start a port taken meanwhile by another
        process is replaced by a fresh one."""
        for attempt in range(5):
            try:
                self._call(self._start())
                break
            except (OSError, RuntimeError):
                if not new_port_if_taken or attempt == 4:
                    raise
                self.port = free_port()
        wait_until(lambda: reachable("127.0.0.1", self.port), what="the Modbus server")

    def stop(self) -> None:
        """Stop listening and drop every connection."""
        if self.server is not None:
            self._call(self.server.shutdown())
            self.server = None

    def close(self) -> None:
        self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    # -- values ---------------------------------------------------------------------------
    def set_words(self, kind: str, address: int, words: list[int]) -> None:
        with self.lock:
            self.memory[kind][address : address + len(words)] = words

    def set_bits(self, kind: str, address: int, bits: list[bool]) -> None:
        with self.lock:
            self.memory[kind][address : address + len(bits)] = [int(b) for b in bits]

    def read_requests(self) -> list[tuple[str, int, int]]:
        with self.lock:
            return list(self.requests)

    def forget_requests(self) -> None:
        with self.lock:
            self.requests.clear()


def words_of(fmt: str, value: Any, *, word_order: str = "big") -> list[int]:
    """Registers holding ``value`` packed big-endian with ``fmt`` (``f``, ``i``, ``q`` …),
    the high word first or, with ``word_order="little"``, last."""
    data = struct.pack(">" + fmt, value)
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    return words if word_order == "big" else list(reversed(words))


def text_words(text: str, count: int) -> list[int]:
    data = text.encode().ljust(2 * count, b"\x00")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, 2 * count, 2)]


@contextmanager
def modbus_server() -> Iterator[ModbusServer]:
    server = ModbusServer()
    try:
        server.start(new_port_if_taken=True)
        yield server
    finally:
        server.close()


class MalformedDevice:
    """A TCP device that answers every Modbus request with ``answer(request)``: bytes
    that are not the answer asked for (garbage, a short frame)."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = int(self.sock.getsockname()[1])
        self.requests = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        conn.settimeout(0.1)
        with conn:
            while not self._stop.is_set():
                try:
                    request = conn.recv(260)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not request:
                    return
                self.requests += 1
                try:
                    conn.sendall(self.answer(request))
                except OSError:
                    return

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        self.thread.join(5)


# -- Siemens S7 -----------------------------------------------------------------------------
def _counting_server() -> Any:
    import snap7

    class CountingServer(snap7.Server):  # type: ignore[misc]
        """The python-snap7 server, counting read requests and the variables in each."""

        def __init__(self) -> None:
            super().__init__(log=False)
            self.reads: list[int] = []  # variables per read request, in order
            self.count_lock = threading.Lock()

        def _handle_read_area(self, request: dict[str, Any], client_address: Any) -> bytes:
            items = int(request.get("parameters", {}).get("item_count", 1))
            with self.count_lock:
                self.reads.append(items)
            return super()._handle_read_area(request, client_address)  # type: ignore[no-any-return]

    return CountingServer()


class S7Server:
    """The python-snap7 server on a loopback port with data block 1 (64 bytes), data
    block 2 (16 bytes), 16 marker bytes and 4 output bytes, which ``write`` changes."""

    def __init__(self) -> None:
        from snap7.type import SrvArea

        self.port = free_port()
        self.areas = {
            ("DB", 1): bytearray(64),
            ("DB", 2): bytearray(16),
            ("M", 0): bytearray(16),
            ("Q", 0): bytearray(4),
        }
        self._srv_area = {"DB": SrvArea.DB, "M": SrvArea.MK, "Q": SrvArea.PA}
        self.server = _counting_server()
        for (area, index), data in self.areas.items():
            self.server.register_area(self._srv_area[area], index, data)

    def start(self, *, new_port_if_taken: bool = False) -> None:
        for attempt in range(5):
            try:
                self.server.start(tcp_port=self.port)
                break
            except Exception:
                if not new_port_if_taken or attempt == 4:
                    raise
                self.port = free_port()
        wait_until(lambda: reachable("127.0.0.1", self.port), what="the S7 server")

    def stop(self) -> None:
        self.server.stop()

    def write(self, area: str, index: int, start: int, data: bytes) -> None:
        """Change bytes of an area the way the PLC program would, between two reads."""
        kind = self._srv_area[area]
        self.server.lock_area(kind, index)
        try:
            self.areas[(area, index)][start : start + len(data)] = data
        finally:
            self.server.unlock_area(kind, index)

    def reads(self) -> list[int]:
        with self.server.count_lock:
            return list(self.server.reads)

    def forget_reads(self) -> None:
        with self.server.count_lock:
            self.server.reads.clear()


def s7_string(text: str, length: int) -> bytes:
    """An S7 STRING[length]: maximum length, actual length, characters, padding."""
    data = text.encode("latin-1")
    return bytes([length, len(data)]) + data.ljust(length, b"\x00")


@contextmanager
def s7_server() -> Iterator[S7Server]:
    server = S7Server()
    try:
        server.start(new_port_if_taken=True)
        yield server
    finally:
        server.stop()


# -- the realtime service and what it wrote --------------------------------------------------
@contextmanager
def realtime(store: Any, source_id: str) -> Iterator[Any]:
    """The realtime service running ``source_id``, connected; stopped (and its history
    window closed) at the end."""
    from factorysync.realtime.service import RealtimeService

    service = RealtimeService(store, file_watch=False)
    try:
        service.reconcile()
        assert source_id in service.workers, service.failed
        subscriber = service.workers[source_id][1].subscriber
        wait_until(subscriber.connected.is_set, what=f"{source_id} polling")
        yield service
    finally:
        service.stop()


def rows(store: Any, table: str) -> list[dict[str, Any]]:
    from factorysync.store.targets import read_rows

    with store.connect() as conn:
        try:
            found = read_rows(conn, table)
        except Exception:  # no flush yet: the table does not exist
            return []
    return sorted(found, key=lambda r: r["ts"])


def last_error(store: Any, source_id: str) -> str | None:
    from sqlalchemy import select

    from factorysync.store.schema import data_source_registry as reg_t

    with store.connect() as conn:
        found = conn.execute(
            select(reg_t.c.last_error).where(reg_t.c.source_id == source_id)
        ).scalar_one()
    return None if found is None else str(found)


def gaps(store: Any, source_id: str) -> tuple[list[dict[str, Any]], list[Any]]:
    """The gaps the history rows of ``source_id`` list, and its gap events."""
    from sqlalchemy import select

    from factorysync.realtime.service import GAP_EVENT
    from factorysync.store.schema import data_source_sync_history as hist_t
    from factorysync.store.schema import infolog

    with store.connect() as conn:
        details = conn.execute(
            select(hist_t.c.details).where(hist_t.c.source_id == source_id)
        ).scalars()
        listed = [g for d in details for g in (d or {}).get("gaps", [])]
        events = conn.execute(
            select(infolog).where(infolog.c.source_id == source_id, infolog.c.event == GAP_EVENT)
        ).all()
    return listed, list(events)
