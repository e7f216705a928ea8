"""Realtime sources: long-running subscriptions and watches, written in micro-batches.

Modules::

    service.py   RealtimeService: starts, restarts and stops one worker per source
    writer.py    MicroBatchWriter: map, validate, merge by key, quarantine, acknowledge
    incoming.py  one received message on its way through the writer
    target.py    one mapping of a source: record pipeline and target table
    health.py    a source's health and events in the registry and the event log
    window.py    one history row per time window
    spool.py     the local spool file: messages kept while the store is unreachable
    spools.py    this process's spool file, and what the host's spools hold
    backlog.py   a writer's spooled messages: in order, and into the store exactly once
    leftovers.py what a previous run left in the spool, for sources without a writer
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
