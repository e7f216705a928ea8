"""Setting up a store: its key, schema, data root and first admin (``factorysync init``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from factorysync.security.secrets import create_key_file
from factorysync.settings import DEFAULT_DATA_ROOT
from factorysync.store.store import Store
from factorysync.store.templates import seed_templates


@dataclass
class InitResult:
    revision: str | None
    key_created: bool
    key_origin: str
    # The default data root, when this init created it.
    data_root_created: Path | None = None
    # Store files that were readable by others and are now 0600.
    tightened: list[Path] = field(default_factory=list)
    # Data roots that hold the store or the key (Settings.data_root_problems).
    data_root_problems: list[str] = field(default_factory=list)


def init_store(store: Store) -> InitResult:
    """Create the key file (unless a key is set), create/upgrade the schema, make the
    default data root and make a SQLite store's files private."""
    settings = store.settings
    # Before the store is opened, so that new WAL and shared-memory files take 0600 too.
    tightened = store.tighten_files()
    root_created = None
    if settings.data_roots == DEFAULT_DATA_ROOT:
        root = settings.data_root_paths()[0]
        if not root.exists():
            root.mkdir(parents=True)
            root_created = root
    key_created = False
    if settings.secret_key:
        origin = "FACTORYSYNC_SECRET_KEY"
    else:
        key_created = create_key_file(settings.secret_key_file)
        origin = str(settings.secret_key_file.expanduser().resolve())
    store.box  # noqa: B018 - fail now on an unusable key, not at the first secret
    revision = store.upgrade()
    with store.begin() as conn:
        seed_templates(conn)
    return InitResult(
        revision, key_created, origin, root_created, tightened, settings.data_root_problems()
    )


def create_first_admin(store: Store) -> tuple[str, str] | None:
    """On a store without users: the admin user and its one-time token, else None."""
    from factorysync.store.accounts import ensure_first_admin

    with store.begin() as conn:
        return ensure_first_admin(conn)
