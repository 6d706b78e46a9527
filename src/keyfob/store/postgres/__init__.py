"""The PostgreSQL store: keyfob's production store (spec §6), shared by many instances."""

from .store import REVOCATION_CHANNEL, PostgresStore

__all__ = ["REVOCATION_CHANNEL", "PostgresStore"]
