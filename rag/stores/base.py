"""What the product needs from an index, whichever backend holds it.

Retrieval, answers, the UI and indexing talk to a :class:`Store` (a read-only
view of one published version of the index) and a :class:`Backend` (which
opens readers, plans and publishes updates).  Nothing above them touches
FAISS, SQLite or PostgreSQL: a folder (:mod:`rag.stores.embedded`, the
default) and a ``postgresql://`` database (:mod:`rag.stores.postgres`) are
interchangeable, and one conformance suite (tests/test_stores.py) holds both
to the same behaviour.

Row ids are the backend's chunk ids: stable for the life of a chunk, so a
reader of one version can fetch passages, vectors and sentences of the hits it
found without seeing a later update half-way.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ..chunking import Chunk
from ..config import DATABASE_SCHEMES
from ..corpus import Article
from ..filters import SearchFilters
from ..retrieval import LanguageCentroids
from ..store import Manifest, Passage, SentenceVectors

if TYPE_CHECKING:
    from ..names import ArticleVocabulary

Ranking = list[tuple[int, float]]  # (row id, score), best first


class Store(Protocol):
    """One published version of the index, read-only; every method sees that version only."""

    manifest: Manifest  # what the vectors mean, with the counts of this version

    def is_current(self) -> bool:
        """Whether this is still the live version (False once another process has published a newer one)."""

    def search(self, query: np.ndarray, k: int, filters: SearchFilters | None = None) -> Ranking:
        """The ``k`` nearest chunks to ``query`` by cosine among those passing ``filters``.

        A selective filter still gets ``k`` hits when that many chunks pass it.
        """

    def lexical_search(self, question: str, k: int, filters: SearchFilters | None = None) -> tuple[Ranking, Ranking]:
        """BM25 over the folded, alias-normalised tokens: by the question's names and numbers over every
        passage, and by all its words over the passages in its language (see rag.retrieval.LexicalIndex)."""

    def vectors_for(self, row_ids: Iterable[int]) -> np.ndarray:
        """The stored vectors of these chunks, in the order given."""

    def sentence_vectors(self, row_ids: Iterable[int]) -> dict[int, SentenceVectors]:
        ...

    def passages(self, row_ids: Iterable[int]) -> dict[int, Passage]:
        ...

    def all_passages(self) -> list[Passage]:
        ...

    def chunk_rows(self, doc_ids: Iterable[str]) -> list[int]:
        ...

    def name_spread(self, keys: Iterable[str]) -> dict[str, int]:
        """How many articles name each of ``keys``; a key no article names is left out."""

    def names_in_articles(self, keys: Iterable[str], doc_ids: Iterable[str] | None = None,
                          filters: SearchFilters | None = None) -> dict[str, set[str]]:
        ...

    def word_spread(self, words: Iterable[str]) -> dict[str, tuple[int, int]]:
        """Per word, how many articles contain it and how many have it in a name phrase (see
        :func:`rag.names.article_vocabulary`); a word no article has is left out."""

    def articles_with_words(self, words: Iterable[str], doc_ids: Iterable[str] | None = None) -> dict[str, set[str]]:
        """Which of ``words`` each article contains (only the articles ``doc_ids`` when given; those containing
        none are left out)."""

    def mentions_phrase(self, tokens: list[str], rarest: str) -> bool:
        """Whether some article's lexical tokens hold ``tokens`` in a row; only the articles containing ``rarest``
        (one of ``tokens``, the one fewest articles contain) are read."""

    def article(self, doc_id: str) -> Article | None:
        ...

    def articles(self, offset: int = 0, limit: int | None = None) -> list[Article]:
        """Articles in id order: a page of them, or all."""

    def fingerprints(self) -> dict[str, str]:
        ...

    def centroids(self) -> LanguageCentroids:
        """The language centroids of this version, stored at index time."""

    def close(self) -> None:
        ...


class StoreWriter(Protocol):
    """The next version, being written; invisible to readers until :meth:`commit` (leaving the block undoes it)."""

    def remove_articles(self, doc_ids: Iterable[str]) -> int:
        ...

    def add_article(self, article: Article, chunks: list[Chunk], vectors: np.ndarray, sentences: list[SentenceVectors],
                    derived: list[tuple[frozenset[str], list[str]]], vocabulary: ArticleVocabulary) -> None:
        """Add an article with, per chunk, its vector, sentence vectors, name keys and lexical tokens, and the
        article's vocabulary (:func:`rag.names.article_vocabulary`)."""

    def passages(self) -> list[Passage]:
        ...

    def articles(self) -> list[Article]:
        """The articles of the new version."""

    def replace_derived_text(self, rows: Iterable[tuple[int, frozenset[str], list[str]]],
                             vocabularies: Iterable[tuple[str, ArticleVocabulary]]) -> None:
        """Replace every chunk's (row id, name keys, lexical tokens) and every article's (doc id, vocabulary)."""

    def commit(self) -> Manifest:
        """Publish atomically, with the corpus statistics (lexical, names, centroids) brought up to date."""


class Backend(Protocol):
    """Where an index lives: opens readers and writers, and plans updates without loading the index."""

    def exists(self) -> bool:
        ...

    def open(self) -> Store:
        ...

    def live_fingerprints(self) -> tuple[Manifest, dict[str, str]]:
        """The live manifest and article fingerprints; IndexMissing or IndexCorrupt when there is none usable."""

    def writer_lock(self) -> AbstractContextManager[None]:
        """The one-writer lock, across processes; re-entrant in the thread holding it."""

    def writer(self, manifest: Manifest, *, start_empty: bool, ivf_threshold: int) -> AbstractContextManager[StoreWriter]:
        ...

    def derived_missing(self) -> bool:
        """Whether the live version lacks stored corpus statistics (written by an older version): write them."""


def is_database_url(index: Path | str) -> bool:
    return isinstance(index, str) and index.startswith(DATABASE_SCHEMES)


def backend_for(index: Path | str) -> Backend:
    """The backend of an ``index`` setting: a ``postgresql://`` URL, or a folder."""
    if is_database_url(index):
        from .postgres import PostgresBackend  # psycopg is an extra: imported only when a database is used

        return PostgresBackend(str(index))
    from .embedded import EmbeddedBackend

    return EmbeddedBackend(Path(index))


def open_store(index: Path | str) -> Store:
    return backend_for(index).open()


def redacted(url: str) -> str:
    """A database URL without its password, for messages."""
    scheme, _, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    return f"{scheme}://{credentials.split(':')[0]}{':***' if ':' in credentials else ''}{at}{host}" if at else url

