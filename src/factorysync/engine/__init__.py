"""The sync engine: mapping, runs, scheduling."""
