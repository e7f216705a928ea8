"""Workbooks are parsed in a child process with resource limits.

python-calamine is native code reading untrusted files: a workbook of 1.5 KB with one cell
at XFD1048576 makes it allocate a dense range of 17 billion cells (512 GiB), and a failed
allocation aborts the whole process. So the service never parses a workbook itself:

    parent (connector)                          child (python -m this module)
    open_sheet(path, sheet, label, limits) ──▶  sets RLIMIT_AS, RLIMIT_CPU, RLIMIT_CORE
                                                imports python-calamine, opens the sheet
               ◀── {"sheet": name, "start": [row, col]}
               ◀── {"rows": [[row number, [cells]], ...]}     (a few thousand cells each)
               ◀── {"end": rows sent}  or  {"error": kind, ...}

Messages are JSON lines (orjson), one batch at a time, so the parent's memory does not grow
with the sheet, and nothing the child writes is ever executed (no pickle). Values keep their
types: strings, numbers, booleans and null are JSON; dates and times travel as tagged lists
(``["dt", iso]``, ``["d", iso]``, ``["t", iso]``, ``["td", seconds]``) — a cell is never a
list, so the tag is unambiguous.

A child stopped by a limit or a signal raises :class:`ReaderStopped` naming the file and
the reason; the run fails and the service goes on. The engine counts such runs like
crashes (:mod:`factorysync.engine.history`). Limits: ``FACTORYSYNC_PARSER_MAX_MB`` and
``FACTORYSYNC_PARSER_CPU_S``.

This module is also the child's program, so it imports only the standard library, orjson
and factorysync.errors at the top; the package it is in imports nothing when it is
loaded (see :mod:`factorysync.connectors.file`).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import IO, Any

import orjson

from factorysync.errors import ConnectorFatal

CHILD_MODULE = "factorysync.connectors.file.workbook_process"
# Cells per message from the child, and the largest message the parent accepts (one row
# of 16,384 long strings is the only thing that comes near it).
CELLS_PER_MESSAGE = 20_000
ROWS_PER_MESSAGE = 1000
MESSAGE_LIMIT = 256 * 1024 * 1024
# The child's exit status after a MemoryError raised in Python code.
EXIT_MEMORY = 3
STDERR_TAIL = 4096  # bytes of standard error kept from each end
_ALLOCATION = re.compile(r"memory allocation of (\d+) bytes failed")
_OS_ERROR = re.compile(r"\(os error (\d+)\)")


class ReaderStopped(ConnectorFatal):
    """The process parsing a file was stopped by a resource limit or a signal.

    Reading the same file again stops the same way, so the engine treats such a run like a
    crash of its source (two in a row and the source is no longer run automatically).
    """


@dataclass(frozen=True)
class Limits:
    """What one parser process may use: address space (MB) and CPU time (s)."""

    max_mb: int
    cpu_s: int


# -- values on the wire -----------------------------------------------------------------------
def _tag(value: Any) -> Any:
    """orjson's ``default``: the cell types JSON has no type for, as tagged lists."""
    if isinstance(value, datetime):
        return ["dt", value.isoformat()]
    if isinstance(value, date):
        return ["d", value.isoformat()]
    if isinstance(value, time):
        return ["t", value.isoformat()]
    if isinstance(value, timedelta):
        return ["td", value.total_seconds()]
    raise TypeError(f"a workbook cell of type {type(value).__name__}")


def encode(message: dict[str, Any]) -> bytes:
    return orjson.dumps(message, default=_tag, option=orjson.OPT_PASSTHROUGH_DATETIME) + b"\n"


def decode_cell(value: Any) -> Any:
    """A cell as it was in the child (the inverse of :func:`_tag`)."""
    if value.__class__ is not list:
        return value
    kind, text = value[0], value[1]
    if kind == "dt":
        return datetime.fromisoformat(text)
    if kind == "d":
        return date.fromisoformat(text)
    if kind == "t":
        return time.fromisoformat(text)
    if kind == "td":
        return timedelta(seconds=text)
    raise ValueError(f"unknown cell tag {kind!r}")


# -- the parent side --------------------------------------------------------------------------
class Sheet:
    """One sheet being read by a child process: its name, first cell and rows."""

    def __init__(
        self, proc: subprocess.Popen[bytes], stderr: IO[bytes], label: str, limits: Limits
    ):
        self._proc = proc
        self._stderr = stderr
        self.label = label
        self.limits = limits
        self.name = ""
        self.start: tuple[int, int] = (0, 0)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _next(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline(MESSAGE_LIMIT + 1)
        if not line.endswith(b"\n"):
            if len(line) > MESSAGE_LIMIT:
                raise ConnectorFatal(
                    f"{self.label}: a row of the sheet is larger than {MESSAGE_LIMIT // 2**20} MB"
                )
            raise self._stopped()
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            message = None
        if not isinstance(message, dict):
            raise ReaderStopped(
                f"{self.label}: the workbook reader was stopped: it sent a malformed message"
            )
        if "error" in message:
            raise self._failure(message)
        return message

    def begin(self) -> None:
        first = self._next()
        self.name = str(first["sheet"])
        row, col = first["start"]
        self.start = (int(row), int(col))

    def rows(self) -> Iterator[tuple[int, list[Any]]]:
        """(0-based row number in the sheet, cells) of every row that holds a value."""
        while True:
            message = self._next()
            if "end" in message:
                return
            for number, cells in message["rows"]:
                yield number, [decode_cell(v) if v.__class__ is list else v for v in cells]

    def close(self) -> None:
        """Stop the child if it is still reading (the consumer stopped early)."""
        proc = self._proc
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        self._stderr.close()

    # -- why it ended -------------------------------------------------------------------------
    def _failure(self, message: dict[str, Any]) -> Exception:
        label, kind = self.label, message["error"]
        if kind == "os":
            # Raised as the OSError it was (FileNotFoundError, PermissionError, ...), so the
            # file connector reports it like any other file.
            if message["errno"] is None:
                return OSError(str(message["strerror"]))
            return OSError(int(message["errno"]), str(message["strerror"]))
        if kind == "missing":
            return ConnectorFatal(
                "Excel workbooks need the python-calamine package: pip install 'factorysync[excel]'"
            )
        if kind == "password":
            return ConnectorFatal(f"{label}: the workbook is password-protected")
        if kind == "no_sheet":
            names, wanted = message["names"], message["wanted"]
            if isinstance(wanted, int):
                return ConnectorFatal(
                    f"{label}: no sheet at index {wanted} (the workbook has {len(names)}: "
                    f"{', '.join(names)})"
                )
            return ConnectorFatal(
                f"{label}: no sheet named {wanted!r} (sheets: {', '.join(names)})"
            )
        return ConnectorFatal(f"{label}: not a readable workbook ({message.get('detail')})")

    def _stopped(self) -> ReaderStopped:
        """The child closed its output before the end: which limit or signal stopped it."""
        code = self._proc.wait()
        head, tail = self._stderr_ends()
        limits = self.limits
        allocation = _ALLOCATION.search(head) or _ALLOCATION.search(tail)
        if code == EXIT_MEMORY or allocation or "MemoryError" in tail:
            asked = (
                f"; it asked for {_size(int(allocation.group(1)))} at once" if allocation else ""
            )
            reason = (
                f"it needed more than {limits.max_mb} MB (limit FACTORYSYNC_PARSER_MAX_MB{asked})"
            )
        elif code == -signal.SIGXCPU:
            reason = (
                f"it used more than {limits.cpu_s} s of CPU time (limit FACTORYSYNC_PARSER_CPU_S)"
            )
        elif code < 0:
            reason = f"it was killed by {_signal_name(-code)}"
        else:
            last = next((ln.strip() for ln in reversed(tail.splitlines()) if ln.strip()), "")
            reason = f"it exited with status {code}" + (f": {last[:300]}" if last else "")
        return ReaderStopped(f"{self.label}: the workbook reader was stopped: {reason}")

    def _stderr_ends(self) -> tuple[str, str]:
        """The first and the last few KB the child wrote on standard error (a panic
        message comes first, a backtrace may follow it)."""
        err = self._stderr
        err.seek(0)
        head = err.read(STDERR_TAIL)
        err.seek(0, os.SEEK_END)
        err.seek(max(err.tell() - STDERR_TAIL, 0))
        tail = err.read()
        return head.decode("utf-8", "replace"), tail.decode("utf-8", "replace")


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.0f} {unit}"
    return f"{n} bytes"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


@contextmanager
def open_sheet(path: Path, sheet: str | int, label: str, limits: Limits) -> Iterator[Sheet]:
    """The sheet ``sheet`` (a name, or a 0-based index) of the workbook at ``path``, read
    by a child process within ``limits``; ``label`` names the file in errors."""
    # The path travels as an argument of its own: a file name need not be valid UTF-8.
    request = {"sheet": sheet, "max_mb": limits.max_mb, "cpu_s": limits.cpu_s}
    # The child gets no secrets: only what it needs to find its modules.
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
    }
    # Standard error goes to a file (read back only to explain a stop): a pipe nobody
    # drains could block the child.
    stderr = tempfile.TemporaryFile(prefix="factorysync-workbook-")  # noqa: SIM115 - Sheet closes it
    try:
        proc = subprocess.Popen(
            [sys.executable, "-P", "-m", CHILD_MODULE, str(path), orjson.dumps(request).decode()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            close_fds=True,
            start_new_session=True,
        )
    except OSError as exc:
        stderr.close()
        raise ConnectorFatal(f"{label}: the workbook reader could not start: {exc}") from None
    reader = Sheet(proc, stderr, label, limits)
    try:
        reader.begin()
        yield reader
    finally:
        reader.close()


# -- the child side ---------------------------------------------------------------------------
def _limit(max_mb: int, cpu_s: int) -> None:
    import resource

    space = max_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (space, space))
    # SIGXCPU (which ends the process) at the soft limit; SIGKILL a little later if not.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 5))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _send(out: IO[bytes], message: dict[str, Any]) -> None:
    out.write(encode(message))
    out.flush()


def _open(calamine: Any, path: str) -> Any:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        # calamine opens only paths that are valid UTF-8; this file object it reads whole.
        with open(path, "rb") as fh:
            return calamine.CalamineWorkbook.from_filelike(fh)
    return calamine.CalamineWorkbook.from_path(path)


def _stream(out: IO[bytes], path: str, request: dict[str, Any]) -> None:
    try:
        import python_calamine as calamine
    except ImportError:
        _send(out, {"error": "missing"})
        return
    wanted = request["sheet"]
    try:
        workbook = _open(calamine, path)
        names = list(workbook.sheet_names)
        missing = wanted >= len(names) if isinstance(wanted, int) else wanted not in names
        if missing:
            _send(out, {"error": "no_sheet", "wanted": wanted, "names": names})
            return
        if isinstance(wanted, int):
            sheet = workbook.get_sheet_by_index(wanted)
        else:
            sheet = workbook.get_sheet_by_name(wanted)
        start_row, start_col = sheet.start or (0, 0)
        _send(out, {"sheet": sheet.name, "start": [start_row, start_col]})
        batch: list[Any] = []
        cells = sent = 0
        for offset, row in enumerate(sheet.iter_rows()):
            if not any(v != "" for v in row):
                continue
            batch.append([start_row + offset, row])
            cells += len(row)
            if len(batch) >= ROWS_PER_MESSAGE or cells >= CELLS_PER_MESSAGE:
                _send(out, {"rows": batch})
                sent += len(batch)
                batch, cells = [], 0
        if batch:
            _send(out, {"rows": batch})
            sent += len(batch)
        _send(out, {"end": sent})
    except calamine.PasswordError:
        _send(out, {"error": "password"})
    except BrokenPipeError:
        raise
    except OSError as exc:
        # calamine's own OSErrors carry the number only in the text: "... (os error 2)".
        found = _OS_ERROR.search(str(exc))
        number = exc.errno or (int(found.group(1)) if found else None)
        text = exc.strerror or (os.strerror(number) if number else str(exc))
        _send(out, {"error": "os", "errno": number, "strerror": text})
    except (MemoryError, SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:  # a parser panic (pyo3's PanicException) is a broken file too
        detail = str(exc) or type(exc).__name__
        _send(out, {"error": "broken", "detail": detail[:500]})


def main(argv: list[str]) -> int:
    """``python -m factorysync.connectors.file.workbook_process PATH REQUEST``: stream the
    sheet REQUEST (JSON: sheet, max_mb, cpu_s) names of the workbook at PATH to stdout."""
    path, request = argv[1], orjson.loads(argv[2])
    _limit(int(request["max_mb"]), int(request["cpu_s"]))
    try:
        _stream(sys.stdout.buffer, path, request)
    except MemoryError:
        os._exit(EXIT_MEMORY)
    except BrokenPipeError:  # the parent stopped reading
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
