"""The file connection type: one path or a glob of files of one format.

:class:`FileConnector` owns what every format shares: finding the files and keeping them
inside the data roots (:mod:`.paths`), change detection for incremental reads, and
turning OS errors into connector errors (:func:`.base.file_errors`). The format
(:mod:`.json`, :mod:`.csv`, :mod:`.excel`) says how one file becomes record batches.

Incremental reads skip files that did not change since the last successful run: each
file's marker (size, modification time, SHA-256 of the content) is kept in the connector
state. A full read treats the union of all matching files as the snapshot.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from factorysync.connectors.base import (
    Batch,
    Connector,
    ConnectorContext,
    FieldInfo,
    ReadRequest,
    SourceKind,
)
from factorysync.connectors.file.base import (
    FORMATS,
    FileConfig,
    file_errors,
    file_type_of,
    format_class,
)
from factorysync.connectors.file.paths import file_marker, matching_files
from factorysync.errors import ConnectorFatal


class FileConnector(Connector):
    type_name = "file"
    config_model = FileConfig
    source_types = (
        SourceKind(
            "json",
            "JSON",
            "{ }",
            "teal",
            preset={"file_type": "json"},
            summary="A JSON or NDJSON file (or files matching a pattern) in a data folder.",
        ),
        SourceKind(
            "csv",
            "CSV",
            "CSV",
            "green",
            preset={"file_type": "csv"},
            summary="A CSV file (or files matching a pattern) in a data folder.",
        ),
        SourceKind(
            "excel",
            "Excel",
            "XLS",
            "forest",
            preset={"file_type": "excel"},
            summary="A sheet of an Excel workbook in a data folder.",
        ),
    )
    config: FileConfig

    def __init__(self, config: FileConfig, auth: dict[str, Any], context: ConnectorContext):
        super().__init__(config, auth, context)
        self.format = format_class(config.file_type)(config, context)

    @classmethod
    def config_model_for(cls, config: dict[str, Any]) -> type[BaseModel]:
        """The config model of the format ``config`` asks for (FileConfig if unknown)."""
        file_type = file_type_of(config)
        if file_type not in FORMATS:
            return FileConfig
        return format_class(file_type).config_model

    # -- files ---------------------------------------------------------------------
    def files(self) -> list[Path]:
        """The files of ``file_path``, resolved inside the data roots (:mod:`.paths`)."""
        return matching_files(self.config.file_path, self.context.settings)

    def _check(self) -> str:
        files = self.files()
        if not files:
            raise ConnectorFatal(
                f"no file matches {self.config.file_path!r} in the data roots "
                f"({os.pathsep.join(str(r) for r in self.context.settings.data_root_paths())})"
            )
        for path in files:
            with file_errors(str(path), self.config.encoding), path.open("rb") as fh:
                fh.read(1)
        size = sum(p.stat().st_size for p in files)
        return f"{len(files)} {self.config.file_type} file(s), {size:,} bytes"

    # -- reading -------------------------------------------------------------------
    @property
    def columnar(self) -> bool:  # type: ignore[override]
        return self.format.arrow_capable

    def discover(self, *, records_path: str | None = None, limit: int = 200) -> list[FieldInfo]:
        """Fields of the first records; timestamps the format read without an offset
        (and so in ``timezone``) are marked ``naive``."""
        self.format.naive_columns = set()
        fields = super().discover(records_path=records_path, limit=limit)
        every = self.format.naive_datetimes
        for info in fields:
            info.naive = info.name in self.format.naive_columns or (
                every and info.kind == "datetime"
            )
        return fields

    def read(self, request: ReadRequest) -> Iterator[Batch]:
        records_path = request.records_path or self.config.records_path
        self.format.columnar = request.columnar and self.format.arrow_capable
        if request.strategy != "incremental":
            for path in self.files():
                yield from self._read_file(path, records_path)
            return
        yield from self._read_changed(request.state, records_path)

    def _read_file(self, path: Path, records_path: str | None) -> Iterator[Batch]:
        label = str(path)
        with file_errors(label, self.config.encoding, path):
            yield from self.format.read(path, records_path, label)

    def _read_changed(self, state: dict[str, Any], records_path: str | None) -> Iterator[Batch]:
        """Read only files that are new or changed; the state carries their markers.

        A file's marker rides on its last batch, so it is stored with that batch's rows:
        a run that stops half-way reads the file again (its rows are upserted again, not
        duplicated). Markers of files that are gone are dropped.
        """
        fingerprint = self.config.fingerprint(self.context.site_zone)
        known: dict[str, Any] = state.get("files", {}) if state.get("config") == fingerprint else {}
        files = self.files()
        present = {str(p) for p in files}
        markers = {k: v for k, v in known.items() if k in present}
        for path in files:
            key = str(path)
            with file_errors(key, self.config.encoding):
                marker, changed = file_marker(path, known.get(key))
            if not changed:
                markers[key] = marker
                continue
            last: Batch | None = None
            for batch in self._read_file(path, records_path):
                if last is not None:
                    yield last
                last = batch
            markers[key] = marker
            if last is not None:
                last.state = {"config": fingerprint, "files": dict(markers)}
                yield last
