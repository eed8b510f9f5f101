"""The embedded store: the index folder of :mod:`rag.store` (SQLite rows, FAISS vectors, atomic generations).

The default, for one machine.  This module adapts :class:`rag.store.IndexStore`
and :class:`rag.store.IndexWriter` to the :class:`rag.stores.base.Store`
protocol, adding what belongs to the whole corpus: the BM25 index with the term
counts it is computed from (:class:`rag.bm25.TermCounts`) and the per-language
vector sums the centroids follow from are saved in each generation, so that
opening the index reads them instead of every passage, and the next generation
updates them by the chunks it adds and removes instead of recounting; and filters,
which narrow the FAISS search to the admitted rows (an ID selector) so a
selective filter still returns ``k`` hits.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import faiss
import numpy as np

from ..filters import SearchFilters
from ..bm25 import TermCounts
from ..retrieval import LanguageCentroids, LanguageSums, LexicalIndex, add_to_sums, language_sums, term_counts
from ..store import (FLAT, IndexStore, IndexWriter, Manifest, Passage, live_fingerprints, live_generation,
                     writer_lock)
from .base import Ranking

LEXICAL = "lexical"  # folder of the saved BM25 index in a generation
LANGUAGE_SUMS = "language_sums.npz"  # per language, the sum of a generation's vectors, its chunks and articles
ADMITTED_CACHE = 8  # filters whose admitted rows a reader keeps


class EmbeddedStore(IndexStore):
    """One generation of an index folder, with filters, lexical search and centroids."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._derived_lock = threading.Lock()
        self._lexical: LexicalIndex | None = None
        self._centroids: LanguageCentroids | None = None
        self._admitted_rows: dict[SearchFilters, np.ndarray] = {}

    def is_current(self) -> bool:
        return self.generation == live_generation(self.folder)

    def search(self, query: np.ndarray, k: int, filters: SearchFilters | None = None) -> Ranking:
        """Without filters, FAISS over everything; with them, over the admitted rows only.

        A flat index searched with an ID selector is exact, so it returns ``k``
        hits whenever ``k`` rows pass.  An IVF index only looks into ``nprobe``
        lists, which may hold fewer admitted rows than ``k``: then the admitted
        rows are few enough to score exactly from their stored vectors.
        """
        if not filters:
            return super().search(query, k)
        allowed = self._admitted(filters)
        if not len(allowed):
            return []
        k = min(k, len(allowed))
        selector = faiss.IDSelectorBatch(allowed)
        params = (faiss.SearchParameters(sel=selector) if self.manifest.layout == FLAT
                  else faiss.SearchParametersIVF(sel=selector, nprobe=self.vectors.nprobe))
        scores, ids = self.vectors.search(query.reshape(1, -1).astype(np.float32), k, params=params)
        found = [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]
        return found if len(found) == k else self._exact(query, allowed, k)

    def _admitted(self, filters: SearchFilters) -> np.ndarray:
        """:meth:`admitted_rows`, remembered for the last few filters (one question asks thrice)."""
        with self._derived_lock:
            if filters not in self._admitted_rows:
                if len(self._admitted_rows) >= ADMITTED_CACHE:
                    self._admitted_rows.clear()
                self._admitted_rows[filters] = self.admitted_rows(filters)
            return self._admitted_rows[filters]

    def _exact(self, query: np.ndarray, row_ids: np.ndarray, k: int) -> Ranking:
        scores = self.vectors_for(row_ids.tolist()) @ query
        top = np.argsort(-scores, kind="stable")[:k]
        return [(int(row_ids[i]), float(scores[i])) for i in top]

    def lexical_search(self, question: str, k: int, filters: SearchFilters | None = None) -> tuple[Ranking, Ranking]:
        return self.lexical().search(question, k, self._admitted(filters) if filters else None)

    def lexical(self) -> LexicalIndex:
        """The BM25 index saved with the generation; built from its passages for an index written before."""
        with self._derived_lock:
            if self._lexical is None:
                folder = self.generation / LEXICAL
                self._lexical = LexicalIndex.load(folder) if folder.is_dir() else LexicalIndex.build(self.all_passages())
            return self._lexical

    def centroids(self) -> LanguageCentroids:
        """The centroids saved with the generation; computed from its vectors for an index written before."""
        with self._derived_lock:
            if self._centroids is None:
                if (self.generation / LANGUAGE_SUMS).is_file():
                    self._centroids = LanguageCentroids.from_sums(load_language_sums(self.generation / LANGUAGE_SUMS))
                else:
                    passages = self.all_passages()
                    self._centroids = LanguageCentroids(passages, self.vectors_for(p.row_id for p in passages))
            return self._centroids


class EmbeddedWriter(IndexWriter):
    """An :class:`IndexWriter` that saves the corpus statistics in the generation it publishes."""

    text_replaced = False  # every chunk's lexical tokens were rewritten (a new names version): count them all

    def replace_derived_text(self, rows, vocabularies) -> None:
        super().replace_derived_text(rows, vocabularies)
        self.text_replaced = True

    def commit(self) -> Manifest:
        """Save what readers would otherwise compute from every passage when they open the index.

        The BM25 statistics and the language centroids cover the whole corpus; built
        per process they made opening an index of thousands of articles read all of it.
        Both are updated from the live generation's by the chunks this one added and
        removed: rebuilt from every passage, they made adding one article to 100,000
        chunks take seconds (bench/README.md §10).
        """
        previous = self.previous[0] if self.previous else None
        added, removed = self.changed("added"), self.changed("removed")
        self._term_counts(previous, added[0], removed[0]).save(self.generation / LEXICAL)
        save_language_sums(self._language_sums(previous, added, removed), self.generation / LANGUAGE_SUMS)
        return super().commit()

    def _term_counts(self, previous: Path | None, added: list[Passage], removed: list[Passage]) -> TermCounts:
        """The live generation's counts without the removed chunks, with the added ones (only their tokens read);
        counted from every chunk when the live generation has none or every chunk's tokens changed."""
        if previous is None:  # a first build: every chunk is added
            return term_counts(added, self.lexical_tokens("added"))
        if self.text_replaced or not TermCounts.saved_in(previous / LEXICAL):
            return term_counts(self.passages(), self.lexical_tokens())
        return TermCounts.load(previous / LEXICAL).without(p.row_id for p in removed).plus(
            (p.row_id for p in added), (p.lang for p in added), self.lexical_tokens("added"))

    def _language_sums(self, previous: Path | None, added: tuple[list[Passage], np.ndarray],
                       removed: tuple[list[Passage], np.ndarray]) -> LanguageSums:
        """The live generation's sums with the added chunks counted in and the removed ones out; counted from
        every vector when the live generation has none (written before the sums were kept)."""
        if previous is not None and not (previous / LANGUAGE_SUMS).is_file():
            return language_sums(self.passages(), self.vectors())
        sums = load_language_sums(previous / LANGUAGE_SUMS) if previous is not None else {}
        for sign, (passages, vectors) in ((1, added), (-1, removed)):
            for lang, (total, n, articles) in language_sums(passages, vectors).items():
                add_to_sums(sums, lang, sign * total, sign * n, sign * articles)
        return sums


def save_language_sums(sums: LanguageSums, path: Path) -> None:
    """Only the languages that still have chunks: a removed language is forgotten."""
    live = {lang: s for lang, s in sums.items() if s[1] > 0}
    with open(path, "wb") as handle:
        np.savez(handle, **{f"sum-{lang}": np.asarray(total, dtype=np.float64) for lang, (total, _, _) in live.items()},
                 **{f"counts-{lang}": np.array([n, a]) for lang, (_, n, a) in live.items()})


def load_language_sums(path: Path) -> LanguageSums:
    with np.load(path) as saved:
        return {name[4:]: (saved[name], *(int(c) for c in saved[f"counts-{name[4:]}"]))
                for name in saved.files if name.startswith("sum-")}


class EmbeddedBackend:
    """An index folder (see :mod:`rag.store` for its layout and crash safety)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def __str__(self) -> str:
        return str(self.folder)

    def exists(self) -> bool:
        return live_generation(self.folder) is not None

    def open(self) -> EmbeddedStore:
        return EmbeddedStore.open(self.folder)

    def live_fingerprints(self) -> tuple[Manifest, dict[str, str]]:
        return live_fingerprints(self.folder)

    def writer_lock(self) -> AbstractContextManager[None]:
        return writer_lock(self.folder)

    @contextmanager
    def writer(self, manifest: Manifest, *, start_empty: bool, ivf_threshold: int) -> Iterator[EmbeddedWriter]:
        with EmbeddedWriter(self.folder, manifest, start_empty=start_empty, ivf_threshold=ivf_threshold) as writer:
            yield writer

    def derived_missing(self) -> bool:
        live = live_generation(self.folder)
        return live is not None and not ((live / LEXICAL).is_dir() and (live / LANGUAGE_SUMS).is_file())
