"""What the settings say about factorysync's own files: the store's SQLite file and its
side files, the key file, and data roots that must not hold them.

A part of :class:`factorysync.settings.Settings` (its methods here), kept apart so the
settings module stays the list of settings."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from factorysync.errors import ConfigError

# A folder of its own beside the store and the key file (``factorysync init`` creates it):
# a root that held those would let any file source read them.
DEFAULT_DATA_ROOT = "./data"
# Files SQLite keeps beside a database, with the same contents or parts of them.
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


class OwnFiles:
    """The file methods of the settings (a mixin of :class:`~factorysync.settings.Settings`,
    which holds the fields named below)."""

    if TYPE_CHECKING:
        database_url: str
        data_roots: str
        secret_key: str
        secret_key_file: Path

    def data_root_paths(self) -> list[Path]:
        return [Path(p).expanduser().resolve() for p in self.data_roots.split(os.pathsep) if p]

    def sqlite_store_path(self) -> Path | None:
        """The store's database file (resolved) when the store is SQLite on a file."""
        path = sqlite_path(self.database_url)
        return None if path is None else path.resolve()

    def own_files(self) -> list[tuple[Path, str]]:
        """The store's SQLite file and the key file, resolved, with what each is.

        The store holds password and token hashes and the encrypted secrets; the key file
        decrypts those secrets. It counts while it is in use (no FACTORYSYNC_SECRET_KEY)
        or present.
        """
        found: list[tuple[Path, str]] = []
        store = self.sqlite_store_path()
        if store is not None:
            found.append((store, "the store's database file"))
        key = self.secret_key_file.expanduser()
        if not self.secret_key.strip() or key.exists():
            found.append((key.resolve(), "the secret key file"))
        return found

    def protected_files(self) -> list[tuple[Path, str]]:
        """Files no source may read: :meth:`own_files` and the store's side files, which
        hold the same pages."""
        found = self.own_files()
        store = self.sqlite_store_path()
        if store is not None:
            found += [
                (store.with_name(store.name + suffix), f"the store's {suffix[1:]} file")
                for suffix in SQLITE_SIDE_FILES
            ]
        return found

    def data_root_problems(self) -> list[str]:
        """Data roots that hold the store or the key file, one line per root and file."""
        own = self.own_files()
        return [
            f"data root {root} contains {what} {path}"
            for root in self.data_root_paths()
            for path, what in own
            if path == root or path.is_relative_to(root)
        ]

    def check_data_roots(self) -> None:
        """Refuse data roots through which file and SQLite sources could read the store
        or the key file (and so serve them to anyone who may read target tables)."""
        problems = self.data_root_problems()
        if problems:
            raise ConfigError(
                "FACTORYSYNC_DATA_ROOTS would let sources read factorysync's own files: set "
                "it to a folder of its own that holds only source files (the default, "
                f"{DEFAULT_DATA_ROOT}, beside the store and the key file, is one)",
                problems,
            )


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (None for other databases and in-memory ones)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    if parsed.database == ":memory:" or parsed.database.startswith("file:"):
        return None
    return Path(parsed.database).expanduser()
