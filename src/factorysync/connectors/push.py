"""HTTP push sources: systems that send their records to factorysync instead of being read.

A push source has nothing to connect to: records arrive at ``POST /api/ingest/{source_id}``
(one JSON object, or an array of objects) and are written like realtime messages, in
micro-batches through the source's mappings (:mod:`factorysync.api.ingest`). The batch
scheduler leaves push sources alone.

``connection_config`` (all optional)::

    max_records: 10000   # records one request may carry
    batch_rows: 500      # micro-batch size (requests arriving together share a batch)
    batch_ms: 50         # how long the first record of a batch may wait for others
    timezone: Asia/Jakarta  # of timestamps sent without an offset (default: the site's)

A token that may push to one source only: ``factorysync token create --user NAME
--scope ingest:SOURCE_ID``.
"""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field

from factorysync.connectors.base import (
    Batch,
    Connector,
    FieldInfo,
    NaiveZone,
    ReadRequest,
    SourceKind,
    naive_zone_field,
)
from factorysync.errors import ConnectorFatal


class PushConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_records: int = Field(
        title="Most records per request",
        examples=[10000],
        default=10_000,
        ge=1,
        le=1_000_000,
        description="Most records one POST /api/ingest request may carry; a larger "
        "request is refused with HTTP 413.",
    )
    batch_rows: int = Field(
        title="Rows per micro-batch",
        examples=[500],
        default=500,
        ge=1,
        le=100_000,
        description="Micro-batches: most rows written in one transaction (requests "
        "arriving together share one).",
    )
    batch_ms: float = Field(
        title="Micro-batch wait (ms)",
        examples=[50],
        default=50,
        ge=0,
        le=60_000,
        description="Micro-batches: milliseconds the first record of a batch may wait "
        "for others before it is written; 0 writes at once.",
    )
    timezone: NaiveZone = naive_zone_field(
        "timestamps the pushed records carry without a UTC offset, read so where a mapping "
        "field types them as datetime"
    )


class PushConnector(Connector):
    """Push sources receive their data; ``check`` says where, ``read`` has nothing to read."""

    type_name = "push"
    config_model = PushConfig
    source_types = (
        SourceKind(
            "push",
            "HTTP push",
            "PUSH",
            "rose",
            summary="Records that another system posts to factorysync over HTTP.",
        ),
    )
    polls = False

    @classmethod
    def unpolled_reason(cls, source_id: str) -> str:
        return (
            f"source {source_id!r} is an HTTP push source: records are written when a "
            f"system posts them to /api/ingest/{source_id}, not by syncs"
        )

    pushes = True

    def _check(self) -> str:
        return f"ready: records are received at POST /api/ingest/{self.context.source_id}"

    def discover(self, *, records_path: str | None = None, limit: int = 200) -> list[FieldInfo]:
        raise ConnectorFatal(
            f"source {self.context.source_id!r} is an HTTP push source: its fields are what "
            "the sender posts; declare them in mapping_config.fields"
        )

    def read(self, request: ReadRequest) -> Iterator[Batch]:
        raise ConnectorFatal(self.unpolled_reason(self.context.source_id))
