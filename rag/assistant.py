"""The library API: one object that the CLI, the UI, the evaluation and the tests share.

It owns the expensive parts (the embedding model, the open index) so they are
loaded once per process, and keeps the index in step with the corpus.
"""

from __future__ import annotations

import threading
from functools import cached_property

from .config import Settings, load_settings
from .embeddings import Embedder
from .indexing import IndexReport, update_index
from .retrieval import Hit, LexicalIndex, RetrievalOptions, Retriever
from .store import IndexStore, live_generation


class Assistant:
    def __init__(self, settings: Settings | None = None):
        self.settings = settings or load_settings()
        self._store: IndexStore | None = None
        self._lexical: LexicalIndex | None = None
        self._lock = threading.RLock()

    @cached_property
    def embedder(self) -> Embedder:
        return Embedder(self.settings.model, self.settings.model_cache)

    def index(self, *, rebuild: bool = False, progress: bool = True) -> IndexReport:
        """Bring the index up to date with the corpus (incrementally unless ``rebuild``)."""
        with self._lock:
            report = update_index(self.settings, self.embedder, rebuild=rebuild, progress=progress)
            self._reopen_if_changed()
            return report

    @property
    def store(self) -> IndexStore:
        """The live index, reopened when another process has published a newer generation."""
        with self._lock:
            self._reopen_if_changed()
            if self._store is None:
                self._store = IndexStore.open(self.settings.index)
            return self._store

    def _reopen_if_changed(self) -> None:
        if self._store is not None and self._store.generation != live_generation(self.settings.index):
            self._store.close()
            self._store = None
            self._lexical = None

    @property
    def retriever(self) -> Retriever:
        with self._lock:
            store = self.store
            options = RetrievalOptions(self.settings.lexical_weight, self.settings.candidates)
            if options.lexical_weight > 0 and self._lexical is None:
                self._lexical = LexicalIndex(store.all_passages())
            return Retriever(store, self.embedder, self._lexical, options)

    def search(self, question: str, k: int | None = None) -> list[Hit]:
        return self.retriever.search(question, k or self.settings.top_k)
