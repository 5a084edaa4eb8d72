"""Persistence: the Store protocol and its SQL implementation."""
