"""tradebot: a paper-trading daemon for crypto markets."""

__version__ = "0.1.0"
