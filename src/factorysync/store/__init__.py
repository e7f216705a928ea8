"""The factorysync store: registry, history, state and target tables in one database."""
