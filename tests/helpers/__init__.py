"""Helpers shared by the tests (import as ``tests.helpers.<module>``)."""
