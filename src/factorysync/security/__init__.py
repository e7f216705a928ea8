"""Secrets (encryption at rest, redaction) and the login throttle. Accounts (users, roles,
API tokens) are the store's: :mod:`factorysync.store.accounts`."""
