"""Realtime sources: long-running subscriptions and watches, written in micro-batches.

Modules::

    service.py   RealtimeService: starts, restarts and stops one worker per source
    writer.py    MicroBatchWriter: map, validate, merge by key, quarantine, acknowledge
    window.py    one history row per time window
    bus.py       committed changes for live subscribers (SSE)
    mqtt.py      MQTT subscriber (paho-mqtt)
    opcua.py     OPC UA subscriber (asyncua)
    filewatch.py file sources with ``auto_reload``: a sync soon after the file changes
"""

# Connection types the realtime service runs; the batch scheduler leaves them alone.
REALTIME_CONNECTION_TYPES = ("mqtt", "opcua")
# Connection types whose records are pushed to the API (POST /api/ingest/{source_id}).
PUSH_CONNECTION_TYPES = ("push",)
