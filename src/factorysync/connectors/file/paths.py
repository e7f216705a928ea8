"""Where a file source's files are, and whether they changed.

Every path a source names is resolved inside the configured data roots
(``FACTORYSYNC_DATA_ROOTS``): symbolic links and ``..`` are resolved first, so neither
leads out of a root, and factorysync's own files (the SQLite store, its side files, the
key file) are refused whatever path leads to them. The database connector's SQLite files
and the realtime file watch are confined by the same functions.

A file's change marker (size, modification time, SHA-256 of the content) is what an
incremental read compares to skip files that did not change.
"""

from __future__ import annotations

import glob
import hashlib
import os
import time
from pathlib import Path
from typing import Any

from factorysync.errors import ConnectorFatal
from factorysync.settings import Settings

# A file whose modification time is this close to the moment its marker was taken may
# have changed again within the file system's timestamp granularity: hash it again.
RACY_NS = 2_000_000_000


# -- confinement --------------------------------------------------------------------------
class OwnFiles:
    """factorysync's own files (:meth:`Settings.protected_files`: the SQLite store, its
    side files and the key file), known by resolved path and by file identity, so that
    neither a symbolic link nor a hard link inside a data root leads a source to them."""

    def __init__(self, settings: Settings) -> None:
        self.by_path = {path: (path, what) for path, what in settings.protected_files()}
        self.by_id: dict[tuple[int, int], tuple[Path, str]] = {}
        for path, what in self.by_path.values():
            try:
                st = path.stat()
            except OSError:
                continue
            self.by_id[(st.st_dev, st.st_ino)] = (path, what)

    def refuse(self, resolved: Path, shown: str) -> None:
        """Raise when ``resolved`` (a resolved path, given as ``shown``) is one of them."""
        hit = self.by_path.get(resolved)
        if hit is None and self.by_id:
            try:
                st = resolved.stat()
            except OSError:
                st = None
            if st is not None:
                hit = self.by_id.get((st.st_dev, st.st_ino))
        if hit is not None:
            path, what = hit
            raise ConnectorFatal(
                f"path {shown!r} leads to {what} {path}: sources may not read factorysync's "
                "own files"
            )


def resolve_in_roots(path_text: str, settings: Settings, own: OwnFiles | None = None) -> Path:
    """The absolute path for ``path_text``, refused when it is outside every data root
    or is one of factorysync's own files (``own``, computed when not given).

    A relative path is looked up under each root in order (the first that exists wins).
    Symbolic links and ``..`` are resolved first, so neither leads out of a root.
    """
    roots = settings.data_root_paths()
    if not roots:
        raise ConnectorFatal("no data roots configured (FACTORYSYNC_DATA_ROOTS is empty)")
    raw = Path(path_text).expanduser()
    candidates = [raw] if raw.is_absolute() else [root / raw for root in roots]
    chosen = next((c for c in candidates if c.exists()), candidates[0])
    resolved = chosen.resolve()
    (own or OwnFiles(settings)).refuse(resolved, path_text)
    if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
        raise ConnectorFatal(
            f"file path {path_text!r} is outside the data roots "
            f"({os.pathsep.join(str(r) for r in roots)}); add its folder to FACTORYSYNC_DATA_ROOTS"
        )
    return resolved


def matching_files(pattern: str, settings: Settings) -> list[Path]:
    """The files ``pattern`` (a path or a glob; ``**`` for every sub-folder) names, each
    resolved inside the data roots, sorted. A relative pattern is looked up under every
    root; a path that names no file is refused."""
    if glob.has_magic(pattern):
        roots = settings.data_root_paths()
        base = Path(pattern).expanduser()
        patterns = [str(base)] if base.is_absolute() else [str(r / base) for r in roots]
        found = sorted({Path(p) for pat in patterns for p in glob.glob(pat, recursive=True)})
        own = OwnFiles(settings)
        return [resolve_in_roots(str(p), settings, own) for p in found if p.is_file()]
    path = resolve_in_roots(pattern, settings)
    if not path.exists():
        raise ConnectorFatal(f"file not found: {path}")
    if not path.is_file():
        raise ConnectorFatal(f"not a file: {path}")
    return [path]


# -- change markers -----------------------------------------------------------------------
def content_hash(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def file_marker(path: Path, old: dict[str, Any] | None) -> tuple[dict[str, Any], bool]:
    """The file's current marker, and whether it changed since ``old``.

    The content is hashed again unless size and modification time are those of ``old``
    and that time is safely older than when ``old`` was taken."""
    stat = path.stat()
    if (
        old is not None
        and old.get("size") == stat.st_size
        and old.get("mtime_ns") == stat.st_mtime_ns
        and stat.st_mtime_ns < old.get("checked_ns", 0) - RACY_NS
    ):
        return old, False
    marker = {
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "sha256": content_hash(path),
        "checked_ns": time.time_ns(),
    }
    return marker, old is None or old.get("sha256") != marker["sha256"]
