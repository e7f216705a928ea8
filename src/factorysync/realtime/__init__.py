"""Realtime sources: long-running subscriptions and watches, written in micro-batches.

Modules::

    service.py   RealtimeService: starts, restarts and stops one worker per source
    writer.py    MicroBatchWriter: map, validate, merge by key, quarantine, acknowledge
    window.py    one history row per time window
    bus.py       committed changes for live subscribers (SSE)
    filewatch.py file sources with ``auto_reload``: a sync soon after the file changes

The subscriptions themselves belong to their connection types (``subscribe`` on the
connector class: :mod:`factorysync.connectors.mqtt`, :mod:`factorysync.connectors.opcua`).
"""

from factorysync.connectors.registry import TypesWith

# Connection types the realtime service runs (the registry's streaming ones); the batch
# scheduler leaves them alone. Read from the registry at each use.
REALTIME_CONNECTION_TYPES = TypesWith("streams")
# Connection types whose records are pushed to the API (POST /api/ingest/{source_id}).
PUSH_CONNECTION_TYPES = TypesWith("pushes")
