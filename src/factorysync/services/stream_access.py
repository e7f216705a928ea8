"""An open event stream's credential, checked again while the stream stays open.

A request is authenticated once, when it arrives; an event stream (the API's
``/api/stream/{table}``, the console's live data pages) may stay open for days. So each
stream checks its token again every :data:`RECHECK_S` seconds and ends once the token is
revoked or expired, the session logged out, the user disabled, or the role or scopes no
longer enough. While the store is unreachable the check cannot answer, and the stream
stays open, as the API keeps trusting a token it checked lately.
"""

from __future__ import annotations

import asyncio
import time

from sqlalchemy.exc import SQLAlchemyError

from factorysync.store.accounts import authenticate
from factorysync.store.store import Store

RECHECK_S = 5.0
ENDED = "the stream's credential is no longer valid (revoked, expired, logged out or disabled)"


class StreamAccess:
    """``token``, which opened a stream needing ``role`` (and ``scope``, for a scoped
    token); :meth:`still_valid` asks the store again when :data:`RECHECK_S` has passed."""

    def __init__(self, store: Store, token: str, role: str, scope: str | None) -> None:
        self.store, self.token, self.role, self.scope = store, token, role, scope
        self._checked = time.monotonic()

    async def still_valid(self) -> bool:
        if time.monotonic() - self._checked < RECHECK_S:
            return True
        self._checked = time.monotonic()
        try:
            return await asyncio.to_thread(self._check)
        except SQLAlchemyError:
            return True  # the store is away: the token cannot be checked now

    def _check(self) -> bool:
        with self.store.connect_autocommit() as conn:
            who = authenticate(conn, self.token)
        return who is not None and who.has_role(self.role) and who.has_scope(self.scope)
