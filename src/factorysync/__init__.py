"""factorysync: keeps a plant dashboard's data sources synced into one store."""

__version__ = "0.1.0"
