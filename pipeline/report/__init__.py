"""Static HTML review pages generated from the store."""

from .pages import write_report

__all__ = ["write_report"]
