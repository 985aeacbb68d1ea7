"""Strategies: read market events and a read-only portfolio view, emit order intents."""
