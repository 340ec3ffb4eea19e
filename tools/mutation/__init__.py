"""Mutation testing of the security code: ``make mutation`` (docs/testing.md)."""
