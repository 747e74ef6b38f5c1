"""Review pages generated from the store, and a small server for them."""

from .pages import write_report

__all__ = ["write_report"]
