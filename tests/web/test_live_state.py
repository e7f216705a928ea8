"""The console's live state of a realtime source: messages per minute, spool depth and
since when its subscription is up, in both languages."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from factorysync.store.types import utcnow
from factorysync.web.i18n import relative, translator
from factorysync.web.templating import environment


def render_live(live: dict[str, Any], language: str) -> str:
    macro = environment().get_template("macros.html").module.live_state  # type: ignore[attr-defined]
    t = translator(language)
    now = utcnow()
    return str(macro(live, t, lambda when: relative(when, now, t), lambda when: when.isoformat()))


def live(**given: Any) -> dict[str, Any]:
    now = utcnow()
    return {
        "state": "receiving",
        "last_message_at": now - timedelta(seconds=3),
        "last_message_age_s": 3.0,
        "records_last_minute": 40,
        "messages_per_minute": 55,
        "spool_depth": 0,
        "subscribed_since": now - timedelta(minutes=5),
    } | given


@pytest.mark.parametrize(("language", "per_min", "spooled"), [
    ("en", "55/min", "1200 spooled"),
    ("id", "55/mnt", "1200 di spool"),
])  # fmt: skip
def test_live_state_shows_rate_spool_depth_and_connected_since(
    language: str, per_min: str, spooled: str
) -> None:
    html = render_live(live(spool_depth=1200), language)
    # The rate counts spooled messages too (messages_per_minute, not records_last_minute).
    assert per_min in html and 'data-per-min="55"' in html
    assert spooled in html and 'data-spool-depth="1200"' in html
    assert "data-connected-since" in html


def test_live_state_leaves_out_what_it_does_not_have() -> None:
    html = render_live(
        live(state="waiting", last_message_at=None, spool_depth=0, subscribed_since=None), "en"
    )
    assert "no data yet" in html
    assert "data-per-min" not in html
    assert "data-spool-depth" not in html
    assert "data-connected-since" not in html
