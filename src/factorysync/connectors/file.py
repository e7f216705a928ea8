"""File sources: one path or a glob, confined to the configured data roots.

The base class owns what every format shares (finding files, confinement, errors);
a format only says how to turn one file into record batches. This release reads
``json`` (an array, or an object with the records under ``records_path``) and ``ndjson``.
Large JSON documents are streamed with ijson so memory does not grow with the file.
"""

from __future__ import annotations

import codecs
import glob
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from factorysync.connectors.base import Batch, Connector, ReadRequest
from factorysync.errors import ConnectorFatal, ConnectorRetriable
from factorysync.settings import Settings

# Documents up to this size are parsed in one go (orjson is ~10x faster than streaming);
# larger ones are streamed.
STREAM_THRESHOLD = 32 * 1024 * 1024


class FileConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file_path: str = Field(min_length=1)
    file_type: Literal["json", "ndjson"] = "json"
    encoding: str = "utf-8"
    auto_reload: bool = False
    records_path: str | None = None
    # Informational fields kept from imported front-end configs.
    file_name: str | None = None
    legacy_path: str | None = None

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, v: str) -> str:
        try:
            codecs.lookup(v)
        except LookupError:
            raise ValueError(f"unknown encoding {v!r} (e.g. utf-8, utf-8-sig, latin-1)") from None
        return v


def resolve_in_roots(path_text: str, settings: Settings) -> Path:
    """The absolute path for ``path_text``, refused when it is outside every data root.

    A relative path is looked up under each root in order (the first that exists wins).
    Symbolic links are resolved first, so a link cannot lead out of a root.
    """
    roots = settings.data_root_paths()
    if not roots:
        raise ConnectorFatal("no data roots configured (FACTORYSYNC_DATA_ROOTS is empty)")
    raw = Path(path_text).expanduser()
    candidates = [raw] if raw.is_absolute() else [root / raw for root in roots]
    chosen = next((c for c in candidates if c.exists()), candidates[0])
    resolved = chosen.resolve()
    if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
        raise ConnectorFatal(
            f"file path {path_text!r} is outside the data roots "
            f"({os.pathsep.join(str(r) for r in roots)}); add its folder to FACTORYSYNC_DATA_ROOTS"
        )
    return resolved


ENVELOPE_LIMIT = 64 * 1024


def envelope_of(document: Any, records_path: str | None) -> dict[str, Any]:
    """How the records sit in the document, with its other small top-level values."""
    if records_path is None:
        return {"shape": "list" if isinstance(document, list) else "object"}
    envelope: dict[str, Any] = {"shape": "wrapped", "records_key": records_path, "extra": {}}
    if isinstance(document, dict) and "." not in records_path:
        extra = {k: v for k, v in document.items() if k != records_path}
        if len(orjson.dumps(extra)) <= ENVELOPE_LIMIT:
            envelope["extra"] = extra
    return envelope


class _Utf8Reader:
    """A byte stream that re-encodes another encoding to UTF-8 (what ijson expects)."""

    def __init__(self, raw: IO[bytes], encoding: str) -> None:
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
        self._raw = raw

    def read(self, size: int = 65536) -> bytes:
        chunk = self._raw.read(size)
        return self._decoder.decode(chunk, final=not chunk).encode("utf-8")


class FileConnector(Connector):
    type_name = "file"
    config_model = FileConfig
    config: FileConfig

    # -- files ---------------------------------------------------------------------
    def files(self) -> list[Path]:
        pattern = self.config.file_path
        if glob.has_magic(pattern):
            roots = self.context.settings.data_root_paths()
            base = Path(pattern).expanduser()
            patterns = [str(base)] if base.is_absolute() else [str(r / base) for r in roots]
            found = sorted({Path(p) for pat in patterns for p in glob.glob(pat, recursive=True)})
            return [resolve_in_roots(str(p), self.context.settings) for p in found if p.is_file()]
        path = resolve_in_roots(pattern, self.context.settings)
        if not path.exists():
            raise ConnectorFatal(f"file not found: {path}")
        if not path.is_file():
            raise ConnectorFatal(f"not a file: {path}")
        return [path]

    def _check(self) -> str:
        files = self.files()
        for path in files:
            try:
                with path.open("rb") as fh:
                    fh.read(1)
            except PermissionError:
                raise ConnectorFatal(f"file not readable (permission denied): {path}") from None
        size = sum(p.stat().st_size for p in files)
        return f"{len(files)} file(s), {size:,} bytes"

    def read(self, request: ReadRequest) -> Iterator[Batch]:
        records_path = request.records_path or self.config.records_path
        for path in self.files():
            try:
                yield from self._read_file(path, records_path)
            except FileNotFoundError:
                raise ConnectorFatal(f"file not found: {path}") from None
            except PermissionError:
                raise ConnectorFatal(f"file not readable (permission denied): {path}") from None
            except UnicodeDecodeError as exc:
                raise ConnectorFatal(
                    f"{path}: not valid {self.config.encoding} at byte {exc.start}; "
                    "set connection_config.encoding"
                ) from None
            except OSError as exc:
                raise ConnectorRetriable(f"{path}: {exc.strerror or exc}") from None

    # -- formats -------------------------------------------------------------------
    def _read_file(self, path: Path, records_path: str | None) -> Iterator[Batch]:
        if self.config.file_type == "ndjson":
            yield from self._read_ndjson(path)
        elif path.stat().st_size <= STREAM_THRESHOLD:
            yield from self._read_json_whole(path, records_path)
        else:
            yield from self._read_json_stream(path, records_path)

    def _batches(self, records: Any, origin: str) -> Iterator[Batch]:
        size = self.context.batch_size
        batch: list[Any] = []
        for record in records:
            batch.append(record)
            if len(batch) >= size:
                yield Batch(batch, origin=origin)
                batch = []
        if batch:
            yield Batch(batch, origin=origin)

    def _decode(self, data: bytes) -> bytes | str:
        encoding = codecs.lookup(self.config.encoding).name
        if encoding == "utf-8":
            return data.removeprefix(codecs.BOM_UTF8)
        return data.decode(self.config.encoding)

    def _read_json_whole(self, path: Path, records_path: str | None) -> Iterator[Batch]:
        from factorysync.engine.mapping import records_at
        from factorysync.errors import MappingError

        data = path.read_bytes()
        try:
            document = orjson.loads(self._decode(data))
        except orjson.JSONDecodeError as exc:
            raise ConnectorFatal(
                f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
                + (" (the file ends early: truncated?)" if exc.pos >= len(data) - 1 else "")
            ) from None
        del data
        try:
            records = records_at(document, records_path)
        except MappingError as exc:
            raise ConnectorFatal(f"{path}: {exc}") from None
        envelope = envelope_of(document, records_path)
        for batch in self._batches(records, str(path)):
            batch.envelope, envelope = envelope, None
            yield batch

    def _read_json_stream(self, path: Path, records_path: str | None) -> Iterator[Batch]:
        import ijson

        prefix = f"{records_path}.item" if records_path else "item"
        with path.open("rb") as raw:
            source: Any = raw
            if codecs.lookup(self.config.encoding).name != "utf-8":
                source = _Utf8Reader(raw, self.config.encoding)
            elif raw.read(3) != codecs.BOM_UTF8:
                raw.seek(0)
            try:
                items = ijson.items(source, prefix, use_float=True)
                count = 0
                for batch in self._batches(items, str(path)):
                    count += len(batch.records)
                    yield batch
            except ijson.JSONError as exc:
                raise ConnectorFatal(
                    f"{path}: invalid JSON near byte {raw.tell():,}: {exc} "
                    "(the file is truncated or malformed)"
                ) from None
        if count == 0:
            raise ConnectorFatal(
                f"{path}: no records at {records_path or 'the top-level array'!r} "
                "(set mapping_config.records_path)"
            )

    def _read_ndjson(self, path: Path) -> Iterator[Batch]:
        size = self.context.batch_size
        batch: list[Any] = []
        with path.open("rb") as fh:
            for lineno, line in enumerate(fh, start=1):
                if lineno == 1:
                    line = line.removeprefix(codecs.BOM_UTF8)
                if not line.strip():
                    continue
                text = (
                    line
                    if codecs.lookup(self.config.encoding).name == "utf-8"
                    else (line.decode(self.config.encoding))
                )
                try:
                    batch.append(orjson.loads(text))
                except orjson.JSONDecodeError as exc:
                    raise ConnectorFatal(
                        f"{path}: line {lineno}: invalid JSON: {exc.msg}"
                        + ("" if line.endswith(b"\n") else " (last line incomplete: truncated?)")
                    ) from None
                if len(batch) >= size:
                    yield Batch(batch, origin=f"{path}:{lineno}")
                    batch = []
        if batch:
            yield Batch(batch, origin=str(path))
