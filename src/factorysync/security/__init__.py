"""Secrets (encryption at rest, redaction) and, later, authentication."""
