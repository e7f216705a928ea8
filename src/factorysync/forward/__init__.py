"""Forwarding: every committed change of chosen target tables, from a plant to a central
PostgreSQL store through NATS JetStream (DESIGN §8, "Sites").

Plant side: the write paths capture changes into the ``forward_outbox`` table in the
transaction of the change (:mod:`factorysync.store.capture`); :mod:`.outbox` reads the
entries back as batches of the plant's current rows, :mod:`.wire` is the message format,
and :mod:`.publisher` sends them to the plant's own NATS server (a leaf node of the
central hub), deleting entries once JetStream acknowledged them. The central side
(``central*`` modules) applies the stream to the central store.

The NATS driver is the optional extra ``nats`` (``pip install 'factorysync[nats]'``),
imported only when a publisher or the central ingest starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from factorysync.store.store import Store

# A publisher that saved its state less than this long ago is taken to be running.
LIVE_S = 20.0


def forward_status(store: Store) -> dict[str, Any] | None:
    """Forwarding as ``status`` shows it: the outbox (entries waiting, oldest entry's age),
    the publisher's last saved state (connected, last error) and which process holds the
    outbox lease (``host:pid:…``, see :mod:`.lease`); None when forwarding is off. The
    URL is shown with its credentials masked."""
    from datetime import datetime

    from factorysync.forward.lease import lease_holder
    from factorysync.forward.outbox import Outbox
    from factorysync.forward.publisher import load_publisher_state, safe_url
    from factorysync.store.types import utcnow

    settings = store.settings
    if not settings.forward_url:
        return None  # nothing is captured or published (the outbox is read when it is on)
    depth = Outbox(store).depth()
    saved = load_publisher_state(store) or {}
    running = False
    if isinstance(saved.get("saved_at"), str):
        age = (utcnow() - datetime.fromisoformat(saved["saved_at"])).total_seconds()
        running = age < LIVE_S
    return {
        "enabled": bool(settings.forward_url),
        "url": safe_url(settings.forward_url) if settings.forward_url else None,
        "stream": settings.forward_stream,
        "tables": settings.forward_tables,
        "site": settings.site,
        **depth,
        "publisher_running": running,
        "publisher": lease_holder(store),
        "connected": bool(running and saved.get("connected")),
        "last_error": saved.get("last_error"),
        "last_error_at": saved.get("last_error_at"),
        "last_published_at": saved.get("last_published_at"),
    }
