"""The HTTP API (FastAPI): management, data for dashboards, accounts and metrics."""

from factorysync.api.app import create_app

__all__ = ["create_app"]
