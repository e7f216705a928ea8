"""The front end's source list over HTTP: for the demo, the same entries as its generated
``constant.js``, and each entry's ``url`` answers that source's records."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from factorysync.demo.run import run_demo
from factorysync.legacy import parse_legacy
from tests.api.conftest import Api

KEYS = ("id", "name", "type", "fileName", "filePath")


def normal(value: Any) -> Any:
    """Equal documents compare equal: instants not offsets, record order aside."""
    if isinstance(value, str) and len(value) > 10 and value[10:11] == "T":
        try:
            return datetime.fromisoformat(value).astimezone(UTC).isoformat()
        except ValueError:
            return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: normal(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [normal(v) for v in value]
        return sorted(items, key=lambda v: orjson.dumps(v, option=orjson.OPT_SORT_KEYS))
    return value


@pytest.fixture
def demo(api: Api, data_dir: Path) -> Path:
    results = run_demo(api.store, data_dir / "demo", size_mb=0.5)
    assert [r.source_id for r in results if r.sync_status != "success"] == []
    return data_dir / "demo"


def test_legacy_list_matches_constant_js_and_urls_serve_the_files(api: Api, demo: Path) -> None:
    entries = parse_legacy((demo / "constant.js").read_text(encoding="utf-8"))
    listed = api.get("/api/legacy/source_data", role="viewer")
    assert listed.status_code == 200
    served = listed.json()
    assert len(served) == len(entries) >= 40
    assert [{k: e[k] for k in KEYS} for e in served] == [
        {k: e.get(k) for k in KEYS} for e in entries
    ]
    for entry in served:
        assert (
            entry["url"] == f"http://testserver/api/sources/{entry['url'].rsplit('/', 2)[-2]}/data"
        )
        response = api.get(entry["url"].removeprefix("http://testserver"), role="viewer")
        assert response.status_code == 200, (entry["name"], response.text)
        document = orjson.loads((demo / entry["filePath"]).read_bytes())
        assert normal(response.json()) == normal(document), entry["filePath"]
