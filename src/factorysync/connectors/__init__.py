"""Connectors: one module per connection type, each with check(), discover() and read(state)."""
