"""Persistence: schema, engine setup, the batching writer thread and read queries."""
