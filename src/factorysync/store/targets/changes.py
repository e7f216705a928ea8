"""Schema changes of a target table, and the error ``schema_contract: freeze`` raises.

Kept apart from the code that makes the changes so the alert rules (and the table's own
state) can name them without importing the DDL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from factorysync.errors import MappingError


@dataclass(frozen=True)
class SchemaChange:
    """A column of a target table that a run added, widened or found gone upstream."""

    table: str
    column: str
    old_type: str | None  # None: the column is new
    new_type: str | None  # None: the source no longer sends the field
    kind: str  # "added", "dropped" or "retyped"

    def message(self) -> str:
        where = f"{self.table}.{self.column}"
        if self.kind == "added":
            return f"{where}: new column ({self.new_type})"
        if self.kind == "dropped":
            return (
                f"{where}: no longer sent by the source (was {self.old_type}); emptied on "
                "the source's rows"
            )
        return f"{where}: type changed from {self.old_type} to {self.new_type}"

    def details(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "column": self.column,
            "old_type": self.old_type,
            "new_type": self.new_type,
            "kind": self.kind,
        }


class SchemaContractError(MappingError):
    """Values of a run would change a column's type under ``schema_contract: freeze``."""

    def __init__(self, source_id: str, changes: list[SchemaChange]) -> None:
        self.source_id = source_id
        self.changes = changes
        listed = "; ".join(
            f"column {c.column!r} of target table {c.table!r} would change type from "
            f"{c.old_type} to {c.new_type}"
            for c in changes
        )
        super().__init__(
            f"schema change refused (mapping_config.schema_contract is freeze): {listed}; "
            "the source now sends values of another type: fix the source, or set "
            "schema_contract: evolve to widen the column"
        )
