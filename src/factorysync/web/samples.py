"""Source values shown as text in the console: sample values of discovery, raw records
of a preview, values read from an OPC UA server."""

from __future__ import annotations

from typing import Any

import orjson

SAMPLE_MAX = 200  # characters of one sample value shown


def _fallback(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return "0x" + bytes(value)[:32].hex()
    return str(value)  # Decimal, and anything else a driver hands over


def sample_text(value: Any) -> str:
    """A sample value as shown: JSON-like for every type a source may give (dates and
    times as ISO text, Decimal as its digits, bytes as hex), never an error."""
    try:
        text = orjson.dumps(
            value,
            default=_fallback,
            option=orjson.OPT_NON_STR_KEYS,
        ).decode()
    except (TypeError, orjson.JSONEncodeError):
        text = repr(value)
    return text if len(text) <= SAMPLE_MAX else text[: SAMPLE_MAX - 1] + "…"
