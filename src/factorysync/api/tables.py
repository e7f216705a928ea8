"""Target tables as the API reads them: the reflection cache lives in
:mod:`factorysync.services.tables`, shared with the console's data browser."""

from factorysync.services.tables import HIDDEN_SYSTEM, SHOWN_SYSTEM, TableCache, TableInfo

__all__ = ["HIDDEN_SYSTEM", "SHOWN_SYSTEM", "TableCache", "TableInfo"]
