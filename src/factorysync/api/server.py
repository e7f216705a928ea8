"""Serving the API with uvicorn (``factorysync serve``, and inside ``run`` and ``demo``)."""

from __future__ import annotations

from typing import Any

from factorysync.store.store import Store


def serve(
    store: Store,
    host: str,
    port: int,
    *,
    workers: int = 1,
    access_log: bool = True,
) -> None:
    """Serve until SIGINT/SIGTERM; blocks. uvicorn shuts down gracefully (API-started
    syncs finish), then re-raises the signal for the caller's handlers."""
    import uvicorn

    level = store.settings.log_level.lower()
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": level,
        "access_log": access_log,
        "proxy_headers": True,
        "server_header": False,
    }
    if workers > 1:
        # Each worker process builds its own app from the same FACTORYSYNC_* settings.
        uvicorn.run(
            "factorysync.api.app:app_from_environment", factory=True, workers=workers, **options
        )
        return
    from factorysync.api.app import create_app

    uvicorn.Server(uvicorn.Config(create_app(store), **options)).run()  # type: ignore[arg-type]
