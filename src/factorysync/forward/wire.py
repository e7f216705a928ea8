"""The forwarding format (version 1) as a plant writes it: subject, headers and payload.

One message per batch of an outbox item, on ``factorysync.<site>.<table>``::

    headers  Nats-Msg-Id: hex sha256 of (site, run, table, op, the item's first outbox
                          seq, the batch's rows as sent)
             Fs-Format: 1
    payload  {"v": 1, "site": …, "table": …, "source_id": …, "run_id": …,
              "outbox_seq": …, "op": "rows" | "delete", "key": [...],
              "columns": {column: kind, …}, "rows": [[…], …], "published_at": …}

The id is the same when the same batch is published again (a crash between the publish
and the outbox cleanup): JetStream drops the copy within the stream's duplicate window.
Other content, or another outbox entry, gets another id. The id covers the whole rows,
not only their keys and ``_row_hash``: rows written by the columnar path have no row hash
(NULL), and a row changed twice within one run keeps its run id. "rows" lists the values in
"columns" order (the provenance columns included, ``_source_id`` not); "delete" lists
key values only.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import orjson

from factorysync.forward.outbox import Rows, Shape, Work, to_json

FORMAT = 1
SUBJECT_PREFIX = "factorysync"
MSG_ID = "Nats-Msg-Id"
FORMAT_HEADER = "Fs-Format"


def subject(site: str, table: str) -> str:
    return f"{SUBJECT_PREFIX}.{site}.{table}"


def message(site: str, work: Work, shape: Shape, rows: Rows) -> tuple[str, bytes]:
    """(``Nats-Msg-Id``, payload) of one batch of ``work``."""
    blob = to_json(rows)
    head = orjson.dumps([site, work.run_id, work.table, work.op, work.first_seq])
    msg_id = hashlib.sha256(head + b"\n" + blob).hexdigest()
    body = {
        "v": FORMAT,
        "site": site,
        "table": work.table,
        "source_id": work.source_id,
        "run_id": work.run_id,
        "outbox_seq": work.first_seq,
        "op": work.op,
        "key": shape.key,
        "columns": shape.kinds,
        "rows": orjson.Fragment(blob),  # encoded once, for the id and the payload
        "published_at": datetime.now(UTC).isoformat(timespec="milliseconds")[:-6] + "Z",
    }
    return msg_id, orjson.dumps(body)


def headers(msg_id: str) -> dict[str, str]:
    return {MSG_ID: msg_id, FORMAT_HEADER: str(FORMAT)}
