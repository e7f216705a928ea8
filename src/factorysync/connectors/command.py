"""Command sources: run a program and read what it prints on standard output.

    connection_type: command   command: /opt/mes/bin/export-shift   parameters: [--line, A]
    connection_type: artisan   command: production:export           (runs php artisan …)

Safety, in the order it is applied:

* the executable must be on ``FACTORYSYNC_COMMAND_ALLOWLIST`` (names on the standard PATH
  or absolute paths; compared after resolving symbolic links);
* the command runs as an argument vector, never through a shell, in a new session (its
  own process group) with a minimal environment: PATH, LANG, TZ, HOME, plus the
  connection's ``environment`` and ``authentication_config.environment`` (for secrets),
  whose names must be on the safe list and never a loader or interpreter hook such as
  ``LD_PRELOAD`` (see ``factorysync.connectors.command_env``);
* parameters with shell metacharacters are refused: they are passed as they are, so
  quoting is never needed, and the called program may hand them to a shell of its own;
* standard output goes to a temporary file (memory stays bounded) and may not exceed
  ``max_output_bytes``; past ``timeout`` the whole process group is killed.

A non-zero exit status, a timeout or too much output fails the run, with the tail of
standard error in the message. Output is then read like a file of ``output_format``
(json, ndjson, csv); ``none`` is for trigger-only jobs whose success is their exit status.
``check()`` validates all of this without running the command.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from factorysync.connectors.base import (
    Batch,
    Connector,
    ConnectorContext,
    FieldInfo,
    ReadRequest,
    SourceKind,
)
from factorysync.connectors.command_config import ArtisanConfig, CommandConfig, Scalar
from factorysync.connectors.command_env import (
    COMMAND_PATH,
    base_environment,
    environment_problems,
)
from factorysync.connectors.file import FileOptions, file_errors, format_class
from factorysync.connectors.file.csv import CsvOptions
from factorysync.errors import ConnectorFatal, ConnectorRetriable
from factorysync.settings import Settings

SHELL_METACHARACTERS = frozenset(";&|$`<>(){}[]*?!~'\"\\\n\r\0")
EX_TEMPFAIL = 75  # sysexits.h: "try again later"
KILL_GRACE_S = 2.0
STDERR_TAIL = 4096


def render_parameters(parameters: list[Scalar] | dict[str, Any]) -> list[str]:
    def text(value: Scalar) -> str:
        return ("true" if value else "false") if isinstance(value, bool) else str(value)

    if isinstance(parameters, list):
        return [text(p) for p in parameters]
    argv: list[str] = []
    for key, value in parameters.items():
        name = key if key.startswith("-") else f"--{key}"
        if value is True:
            argv.append(name)
        elif value is None or value is False:
            continue
        elif isinstance(value, list):
            argv += [f"{name}={text(v)}" for v in value]
        else:
            argv.append(f"{name}={text(value)}")
    return argv


def refuse_metacharacters(argv: list[str]) -> None:
    for index, arg in enumerate(argv):
        found = sorted(set(arg) & SHELL_METACHARACTERS)
        if found:
            shown = " ".join(repr(c) for c in found)
            raise ConnectorFatal(
                f"argument {index} ({arg!r}) contains the shell metacharacter(s) {shown}: "
                "arguments are passed as they are, without a shell, so no quoting or "
                "escaping is needed; remove them"
            )


def allowlist(settings: Settings) -> list[str]:
    return [
        e.strip()
        for e in re.split(rf"[,{re.escape(os.pathsep)}]", settings.command_allowlist)
        if e.strip()
    ]


def resolve_executable(name: str, settings: Settings, cwd: Path | None) -> str:
    """The absolute path of ``name``, refused unless it is on the allowlist."""
    entries = allowlist(settings)
    if not entries:
        raise ConnectorFatal(
            f"command {name!r} may not run: FACTORYSYNC_COMMAND_ALLOWLIST is empty "
            "(list the executables command sources may run)"
        )
    allowed: set[str] = set()
    for entry in entries:
        path_text = entry if "/" in entry else shutil.which(entry, path=COMMAND_PATH)
        if path_text:
            allowed |= {os.path.abspath(path_text), os.path.realpath(path_text)}
    if "/" in name:
        path = Path(name).expanduser()
        if not path.is_absolute():
            path = (cwd or Path.cwd()) / path
        found: str | None = str(path) if path.is_file() and os.access(path, os.X_OK) else None
    else:
        found = shutil.which(name, path=COMMAND_PATH)
    listed = name in entries or (
        found is not None
        and (os.path.abspath(found) in allowed or os.path.realpath(found) in allowed)
    )
    if not listed:
        raise ConnectorFatal(
            f"command {name!r}{f' ({found})' if found else ''} is not on the allowlist "
            f"(FACTORYSYNC_COMMAND_ALLOWLIST: {', '.join(entries)})"
        )
    if found is None:
        raise ConnectorFatal(
            f"command {name!r} is allowlisted but not found or not executable"
            + ("" if "/" in name else f" on PATH ({COMMAND_PATH})")
        )
    return found


class CommandConnector(Connector):
    type_name = "command"
    config_model = CommandConfig
    source_types = (
        SourceKind(
            "command",
            "Command",
            ">_",
            "slate",
            summary="The output of an allowed program run on this server (JSON or CSV).",
        ),
    )
    config: CommandConfig

    def __init__(self, config: CommandConfig, auth: dict[str, Any], context: ConnectorContext):
        super().__init__(config, auth, context)
        # Columns the reads so far typed as timestamps from values without an offset.
        self.naive_columns: set[str] = set()

    # -- what runs -----------------------------------------------------------------
    def argv(self) -> list[str]:
        """The argument vector as configured (the executable not yet resolved)."""
        return [self.config.command, *render_parameters(self.config.parameters)]

    def display(self) -> str:
        return shlex.join(self.argv())

    def _cwd(self) -> Path | None:
        if self.config.working_directory is None:
            return None
        path = Path(self.config.working_directory).expanduser()
        if not path.is_dir():
            raise ConnectorFatal(f"working_directory not found: {path}")
        return path

    def _prepared(self) -> tuple[list[str], Path | None]:
        cwd = self._cwd()
        argv = self.argv()
        refuse_metacharacters(argv)
        argv[0] = resolve_executable(argv[0], self.context.settings, cwd)
        return argv, cwd

    @classmethod
    def authentication_problems(cls, auth: dict[str, Any], settings: Settings) -> list[str]:
        """Problems of an ``authentication_config``, as 'field: message' strings."""
        return environment_problems(auth.get("environment"), settings, "environment")

    def _environment(self, cwd: Path | None) -> dict[str, str]:
        """The command's whole environment; checked again here for sources stored before
        the safe list existed."""
        settings = self.context.settings
        declared = {
            "connection_config.environment": self.config.environment,
            "authentication_config.environment": self.auth.get("environment"),
        }
        problems = [p for w, e in declared.items() for p in environment_problems(e, settings, w)]
        if problems:
            raise ConnectorFatal(
                f"command {self.display()} not run: " + "; ".join(problems) + " (change the "
                "source: this rule also holds for sources saved before it)"
            )
        env = base_environment(settings, cwd)
        # The command's local time is the zone its naive timestamps are read in (not the
        # plant zone, which is for display): `environment` may still set TZ.
        env["TZ"] = self.timezone
        for variables in declared.values():
            env.update({str(k): str(v) for k, v in (variables or {}).items()})
        return env

    def _check(self) -> str:
        argv, cwd = self._prepared()
        self._environment(cwd)
        return f"{argv[0]} may run (allowlisted){f' in {cwd}' if cwd else ''}; not run by check"

    # -- running -------------------------------------------------------------------
    def read(self, request: ReadRequest) -> Iterator[Batch]:
        argv, cwd = self._prepared()
        with tempfile.TemporaryDirectory(prefix="factorysync-cmd-") as tmp:
            out = Path(tmp) / "stdout"
            self._run(argv, cwd, out)
            if self.config.output_format == "none":
                return
            yield from self._parse(out, request.records_path or self.config.records_path)

    def _parse(self, out: Path, records_path: str | None) -> Iterator[Batch]:
        fmt = self.config.output_format
        if fmt == "csv":
            options: FileOptions = self.config.csv or CsvOptions()
            if "encoding" not in options.model_fields_set:
                options = options.model_copy(update={"encoding": self.config.encoding})
            options = options.model_copy(update={"timezone": self.timezone})
        else:
            options = FileOptions(encoding=self.config.encoding, timezone=self.timezone)
        label = f"output of {self.display()}"
        reader = format_class(fmt)(options, self.context)
        reader.naive_columns = self.naive_columns
        with file_errors(label, self.config.encoding):
            yield from reader.read(out, records_path, label)

    @property
    def timezone(self) -> str:
        """``timezone``, else the CSV options' own, else the site's zone, else UTC."""
        inner = self.config.csv.timezone if self.config.csv is not None else None
        return self.config.timezone or inner or self.context.site_zone or "UTC"

    def discover(self, *, records_path: str | None = None, limit: int = 200) -> list[FieldInfo]:
        """Fields of the output's first records; timestamps printed without an offset (and
        so read in ``timezone``) are marked ``naive``."""
        self.naive_columns = set()
        fields = super().discover(records_path=records_path, limit=limit)
        for info in fields:
            info.naive = info.name in self.naive_columns
        return fields

    def _run(self, argv: list[str], cwd: Path | None, out: Path) -> None:
        started = time.monotonic()
        cap = self.config.max_output_bytes
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=self._environment(cwd),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                shell=False,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise ConnectorFatal(f"command {self.display()} could not start: {exc}") from None
        tail: deque[bytes] = deque()
        stderr_reader = threading.Thread(target=_keep_tail, args=(proc.stderr, tail), daemon=True)
        stderr_reader.start()
        timed_out = threading.Event()
        timer = threading.Timer(self.config.timeout, _kill_group, (proc, timed_out))
        timer.daemon = True
        timer.start()
        written = 0
        too_big = False
        try:
            assert proc.stdout is not None
            with out.open("wb") as sink:
                while chunk := proc.stdout.read(65536):
                    written += len(chunk)
                    if written > cap:
                        too_big = True
                        _kill_group(proc, None)
                        break
                    sink.write(chunk)
            status = proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:
                _kill_group(proc, None)
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
            stderr_reader.join(timeout=5)
            if proc.stderr is not None:
                proc.stderr.close()
        took = time.monotonic() - started
        errors = _tail_text(tail)
        what = f"command {self.display()}"
        if timed_out.is_set():
            raise ConnectorRetriable(
                f"{what} timed out after {self.config.timeout:g} s (process group killed)"
                + (f"; stderr: {errors}" if errors else "")
            )
        if too_big:
            raise ConnectorFatal(
                f"{what} printed more than max_output_bytes ({cap:,} bytes); stopped"
                + (f"; stderr: {errors}" if errors else "")
            )
        if status != 0:
            how = (
                f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
            )
            error_class = ConnectorRetriable if status == EX_TEMPFAIL else ConnectorFatal
            raise error_class(
                f"{what} {how} after {took:.1f} s" + (f"; stderr: {errors}" if errors else "")
            )


class ArtisanConnector(CommandConnector):
    """A Laravel ``php artisan`` command (the command type with a preset)."""

    type_name = "artisan"
    config_model = ArtisanConfig  # type: ignore[assignment]
    source_types = (
        SourceKind(
            "artisan",
            "Artisan",
            "php",
            "slate",
            summary="The output of a Laravel artisan command.",
        ),
    )
    config: ArtisanConfig

    def argv(self) -> list[str]:
        return [
            self.config.php,
            self.config.artisan,
            self.config.command,
            *render_parameters(self.config.parameters),
        ]


def _keep_tail(stream: Any, tail: deque[bytes]) -> None:
    size = 0
    for chunk in iter(lambda: stream.read1(4096), b""):
        tail.append(chunk)
        size += len(chunk)
        while size - len(tail[0]) > STDERR_TAIL and len(tail) > 1:
            size -= len(tail.popleft())


def _tail_text(tail: deque[bytes]) -> str:
    text = b"".join(tail)[-STDERR_TAIL:].decode("utf-8", errors="replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    joined = " | ".join(lines[-5:])
    return joined if len(joined) <= 1000 else "…" + joined[-999:]


def _kill_group(proc: subprocess.Popen[bytes], flag: threading.Event | None) -> None:
    """SIGTERM the process group, then SIGKILL what is left after a grace period."""
    if flag is not None:
        flag.set()
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + KILL_GRACE_S
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
