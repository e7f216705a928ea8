"""Whether a run's keys arrive strictly ascending, batch after batch.

Keys that ascend strictly are also unique, and a key index fed them in order takes them
as appends. A SQLite first load then builds its indexes before its rows
(:mod:`~factorysync.store.arrow_stage`), and a PostgreSQL full sync's staging table
needs no unique index to find repeated keys (:mod:`~factorysync.store.targets.staging`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

ORDERED_KINDS = ("integer", "string")  # key kinds followed (Arrow, SQLite and Python agree)


class KeyOrder:
    """Follows one key column's batches; :attr:`ascending` stays True while every key is
    greater than the one before it (text in code point order: SQLite's binary order,
    Python's and Arrow's)."""

    def __init__(self) -> None:
        self.ascending = True
        self._last: Any = None

    def follow(self, keys: pa.Array | None) -> None:
        """One batch's keys, or None where the batch's keys cannot be followed."""
        import pyarrow.compute as pc

        if not self.ascending or keys is None or len(keys) == 0:
            self.ascending = self.ascending and keys is not None
            return
        try:
            rest = len(keys) - 1
            if rest and not pc.all(pc.greater(keys.slice(1), keys.slice(0, rest))).as_py():
                self.ascending = False
                return
            first, last = keys[0].as_py(), keys[-1].as_py()
            if self._last is not None and not first > self._last:
                self.ascending = False
            self._last = last
        except Exception:  # types Arrow or Python cannot compare: taken as unordered
            self.ascending = False

    def lose(self) -> None:
        """Rows came another way (one by one): their order is not known."""
        self.ascending = False
