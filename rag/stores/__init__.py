"""Index backends behind one interface: see :mod:`rag.stores.base`."""

from .base import Backend, Store, StoreWriter, backend_for, is_database_url, open_store

__all__ = ["Backend", "Store", "StoreWriter", "backend_for", "is_database_url", "open_store"]
