"""Infolog, metrics and alerts."""
