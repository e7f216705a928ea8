"""File sources: one path or a glob, confined to the configured data roots.

The file connection type reads files of one format; what every format shares lives once,
and a format only says how one file becomes record batches:

    module              holds
    connector           FileConnector: the files of a source, their markers in the
                        state, full and incremental reads
    paths               data roots, globbing, confinement, change markers
    base                options and config models, the formats' table and interface,
                        reading errors as connector errors
    json                file_type json: orjson (ijson past STREAM_THRESHOLD); ndjson:
                        orjson line by line, pyarrow in chunks on columnar reads
    json_columnar       large JSON arrays on columnar reads: chunks of whole records,
                        parsed by pyarrow
    csv, csv_types      file_type csv: pyarrow, block by block; columns typed per block
    excel               file_type excel: python-calamine (.xlsx .xlsm .xlsb .xls .ods)
    workbook_process    the child process, with resource limits, that parses workbooks

Without ``file_type`` the format follows the file extension (json when unknown).
Timestamps without an offset (CSV text in ``date_formats``, Excel dates, JSON text that
a mapping types as ``datetime``) are read in the connection's ``timezone`` (default UTC).

The names below are imported from their module when first used, not when this package
is: the workbook child process runs ``python -m`` on a module of this package, and so
loads the package before it sets its resource limits, and it needs none of them.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from factorysync.connectors.file.base import (
        FileConfig,
        FileFormat,
        FileOptions,
        file_errors,
        file_type_of,
        format_class,
    )
    from factorysync.connectors.file.connector import FileConnector
    from factorysync.connectors.file.json import envelope_of, records_to_arrow
    from factorysync.connectors.file.paths import OwnFiles, resolve_in_roots

# Each public name → the module of this package that defines it.
_DEFINED_IN = {
    "FileConfig": "base",
    "FileFormat": "base",
    "FileOptions": "base",
    "file_errors": "base",
    "file_type_of": "base",
    "format_class": "base",
    "FileConnector": "connector",
    "envelope_of": "json",
    "records_to_arrow": "json",
    "OwnFiles": "paths",
    "resolve_in_roots": "paths",
}
__all__ = [
    "FileConfig",
    "FileConnector",
    "FileFormat",
    "FileOptions",
    "OwnFiles",
    "envelope_of",
    "file_errors",
    "file_type_of",
    "format_class",
    "records_to_arrow",
    "resolve_in_roots",
]


def __getattr__(name: str) -> Any:
    module = _DEFINED_IN.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
