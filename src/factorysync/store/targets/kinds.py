"""Column kinds as the store writes them: each kind's SQLAlchemy type (:data:`KIND_TYPES`),
next to the kinds themselves (:mod:`factorysync.kinds`: inferred from values, widened,
values converted to fit), which connectors use before any target table exists.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Boolean, Date, Float, Numeric, Text
from sqlalchemy.types import TypeEngine

from factorysync.store.types import JSONType, UTCDateTime

KIND_TYPES: dict[str, TypeEngine[Any]] = {
    "integer": BigInteger(),
    "float": Float(precision=53),
    "decimal": Numeric(),
    "boolean": Boolean(),
    "string": Text(),
    "date": Date(),
    "datetime": UTCDateTime(),
    "json": JSONType,
}
