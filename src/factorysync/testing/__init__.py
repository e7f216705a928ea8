"""Helpers for the tests of connection types, factorysync's own and plugins': the
conformance suite (:mod:`factorysync.testing.conformance`). Nothing in the service imports
this package."""
