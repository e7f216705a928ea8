"""Settings from ``FACTORYSYNC_*`` environment variables (and an optional ``.env`` file)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./factorysync.db"


class Settings(BaseSettings):
    """Process-wide settings. Every field is ``FACTORYSYNC_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(
        env_prefix="FACTORYSYNC_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    env: Literal["dev", "prod"] = "dev"
    database_url: str = DEFAULT_DATABASE_URL
    # Folders that file sources may read from, separated by os.pathsep (":" on Linux).
    data_roots: str = "."
    # Fernet key (urlsafe base64, 32 bytes). When empty, the key file is used.
    secret_key: str = Field(default="", repr=False)
    secret_key_file: Path = Path("./factorysync.key")
    batch_size: int = Field(default=5000, ge=1, le=1_000_000)
    timezone: str = "Asia/Jakarta"
    max_concurrent_syncs: int = Field(default=8, ge=1, le=1024)
    scheduler_tick_s: float = Field(default=1.0, gt=0)
    log_level: str = "INFO"

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        scheme = value.split(":", 1)[0].split("+", 1)[0]
        if scheme not in {"sqlite", "postgresql", "postgres"}:
            raise ValueError(
                f"unsupported store {scheme!r}: use sqlite:///path.db or postgresql://user@host/db"
            )
        if scheme == "postgres":
            value = "postgresql" + value[len("postgres") :]
        if value.startswith("postgresql://"):
            # psycopg 3 is the driver we ship; the bare scheme would ask for psycopg2.
            value = "postgresql+psycopg://" + value[len("postgresql://") :]
        return value

    def data_root_paths(self) -> list[Path]:
        return [Path(p).expanduser().resolve() for p in self.data_roots.split(os.pathsep) if p]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    """Forget cached settings (tests and the CLI call this after changing the environment)."""
    get_settings.cache_clear()
