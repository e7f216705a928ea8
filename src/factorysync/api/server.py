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
    # The client address (login throttling, logs) comes from X-Forwarded-For only when a
    # listed proxy sent it: uvicorn would otherwise trust any loopback peer, and a
    # client on this host could pose as any address. Forwarded and X-Real-IP are not read.
    proxies = store.settings.trusted_proxy_list()
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": level,
        "access_log": access_log,
        "proxy_headers": bool(proxies),
        "forwarded_allow_ips": proxies,
        "server_header": False,
        # Open event streams end on their own when the service stops (see _Server); this
        # bounds what else may hold the shutdown up.
        "timeout_graceful_shutdown": 30,
    }
    if workers > 1:
        # Each worker process builds its own app from the same FACTORYSYNC_* settings.
        uvicorn.run(
            "factorysync.api.app:app_from_environment", factory=True, workers=workers, **options
        )
        return
    from factorysync.api.app import create_app

    app = create_app(store)

    class _Server(uvicorn.Server):
        """Tells the app at the first signal, so live streams end and let uvicorn stop."""

        def handle_exit(self, sig: int, frame: Any) -> None:
            app.state.ctx.begin_shutdown()
            super().handle_exit(sig, frame)

    _Server(uvicorn.Config(app, **options)).run()
