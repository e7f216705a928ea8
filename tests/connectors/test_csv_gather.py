"""CSV blocks are gathered into batches by rows and by size (connectors/file/csv.py)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from factorysync.connectors.file import csv as csv_format


def blocks(count: int, rows: int, width: int) -> list[pa.RecordBatch]:
    text = "x" * width
    return [
        pa.record_batch({"id": pa.array(range(n * rows, (n + 1) * rows)), "t": [text] * rows})
        for n in range(count)
    ]


def test_wide_rows_stop_a_batch_at_its_size(monkeypatch: pytest.MonkeyPatch) -> None:
    given = blocks(10, 100, 1000)  # about 100 KB a block
    monkeypatch.setattr(csv_format, "GATHER_BYTES", 3 * given[0].nbytes)
    out = list(csv_format._gathered(iter(given), 1_000_000))
    # The first block alone, then at most three blocks' bytes a batch, rows in order.
    assert [b.num_rows for _, b in out] == [100, 300, 300, 300]
    assert [first for first, _ in out] == [0, 100, 400, 700]
    assert pa.concat_arrays([b.column(0) for _, b in out]).to_pylist() == list(range(1000))


def test_narrow_rows_stop_a_batch_at_its_row_count() -> None:
    out = list(csv_format._gathered(iter(blocks(10, 100, 1)), 250))
    assert [b.num_rows for _, b in out] == [100, 200, 200, 200, 200, 100]
