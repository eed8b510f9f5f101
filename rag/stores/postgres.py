"""The PostgreSQL store: one database that many server processes share (``index = "postgresql://..."``).

Vectors live in pgvector with an HNSW index (cosine); the lexical side is BM25
computed in SQL from per-chunk term frequencies over the same folded,
alias-normalised tokens as the embedded store (:func:`rag.language.lexical_tokens`),
with its two rankings (names and numbers; all words in the question's
language) fused as the embedded store's are, by the retriever.  Filters are SQL
conditions (:func:`rag.filters.filter_sql`).

Versions work as in the embedded store: every row records the generation that
added it and the one that removed it, a reader sees the rows of the generation
it opened, and a writer publishes the next generation in one transaction (the
rows, the corpus statistics, then the ``rag_state`` pointer), so no reader
ever sees half an update, and a writer killed mid-update leaves nothing behind
(PostgreSQL rolls its transaction back).  One writer at a time, across
processes and machines: a session advisory lock.  A reader asks the database
whether it is still current (one indexed row), so every server sees another's
update at its next question.

The corpus statistics are written at index time and updated incrementally:
per generation, the chunk and term counts BM25 needs, and per language the sum
of the chunk vectors and the chunk and article counts, from which the language
centroids follow without reading a vector (:meth:`LanguageCentroids.from_sums`);
per article, the words and tokens the name vocabulary asks about
(:class:`rag.names.NameVocabulary`).

The schema is created and upgraded by numbered migrations (:data:`MIGRATIONS`),
applied under the writer lock when a writer or reader first connects.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, fields, replace

import numpy as np
import psycopg

from ..chunking import Chunk
from ..corpus import Article
from ..filters import SearchFilters, article_day, filter_sql
from ..language import detect_language, lexical_tokens, name_tokens
from ..retrieval import LanguageCentroids, LanguageSums, add_to_sums
from ..names import ArticleVocabulary
from ..store import (FORMAT, IndexCorrupt, IndexMissing, Manifest, Passage, SentenceVectors, StoreError,
                     reentrant_writer_lock, vocabulary_rows)
from .base import Ranking, redacted

LOCK_KEY = 0x7261675F6E657773  # the writer lock's advisory key ("rag_news")
BM25_K1, BM25_B = 1.5, 0.75  # bm25s's defaults, so both backends rank alike
EXACT_BELOW = 20_000  # a filter admitting fewer chunks is searched exactly, not through HNSW
# HNSW candidates per search.  pgvector's default 40 is below the retriever's 50; on real e5 vectors (bench/README.md
# §10, `python -m bench hnsw-recall`) 100 kept 0.93 of the exact 50 nearest at 15k chunks and 0.84-0.90 at 119k,
# 200 keeps 0.97 and 0.92-0.96 for ~1.5-4 ms more per search; 400 adds ~0.02 for as much again.
EF_SEARCH = 200
LAYOUT = "hnsw"

MIGRATIONS: list[tuple[int, str]] = [
    (1, """
    CREATE EXTENSION IF NOT EXISTS vector;
    CREATE TABLE rag_state (
        id int PRIMARY KEY CHECK (id = 1), generation bigint NOT NULL
    );
    CREATE TABLE generations (
        generation bigint PRIMARY KEY, manifest jsonb NOT NULL,
        chunks bigint NOT NULL, terms bigint NOT NULL, languages jsonb NOT NULL
    );
    CREATE TABLE articles (
        doc_id text NOT NULL, title text NOT NULL, text text NOT NULL, lang text NOT NULL,
        url text, date text, location text NOT NULL, fingerprint text NOT NULL, source text, day text,
        added bigint NOT NULL, removed bigint,
        PRIMARY KEY (doc_id, added)
    );
    CREATE INDEX articles_removed ON articles (removed);
    CREATE INDEX articles_lang ON articles (lang);
    CREATE INDEX articles_source ON articles (lower(source));
    CREATE INDEX articles_day ON articles (day);
    CREATE TABLE chunks (
        id bigserial PRIMARY KEY, doc_id text NOT NULL, position int NOT NULL, start int NOT NULL, "end" int NOT NULL,
        n_tokens int NOT NULL, text text NOT NULL, lang text NOT NULL, embedding vector NOT NULL,
        sentence_spans text NOT NULL, sentence_vectors bytea NOT NULL, n_terms int NOT NULL,
        added bigint NOT NULL, removed bigint
    );
    CREATE INDEX chunks_doc ON chunks (doc_id);
    CREATE INDEX chunks_removed ON chunks (removed);
    CREATE INDEX chunks_added ON chunks (added);
    CREATE TABLE chunk_terms (
        term text NOT NULL, chunk_id bigint NOT NULL REFERENCES chunks ON DELETE CASCADE, tf int NOT NULL,
        PRIMARY KEY (term, chunk_id)
    );
    CREATE INDEX chunk_terms_chunk ON chunk_terms (chunk_id);
    CREATE TABLE chunk_names (
        key text NOT NULL, chunk_id bigint NOT NULL REFERENCES chunks ON DELETE CASCADE,
        PRIMARY KEY (key, chunk_id)
    );
    CREATE INDEX chunk_names_chunk ON chunk_names (chunk_id);
    """),
    (2, """
    CREATE TABLE article_words (
        word text NOT NULL, doc_id text NOT NULL, added bigint NOT NULL, in_text smallint NOT NULL,
        in_name smallint NOT NULL, PRIMARY KEY (word, doc_id, added),
        FOREIGN KEY (doc_id, added) REFERENCES articles ON DELETE CASCADE
    );
    CREATE INDEX article_words_article ON article_words (doc_id, added);
    CREATE TABLE article_tokens (
        doc_id text NOT NULL, added bigint NOT NULL, tokens text NOT NULL, PRIMARY KEY (doc_id, added),
        FOREIGN KEY (doc_id, added) REFERENCES articles ON DELETE CASCADE
    );
    """),
]

PASSAGE_COLUMNS = ('c.id, c.doc_id, c.position, a.title, a.url, a.lang, a.date, c.text, c.start, c."end", a.source')
ARTICLE_COLUMNS = "a.doc_id, a.title, a.text, a.lang, a.url, a.date, a.location, a.fingerprint, a.source"
PASSAGE_JOIN = "chunks c JOIN articles a ON a.doc_id = c.doc_id AND a.added = c.added"
WORDS_JOIN = "article_words w JOIN articles a ON a.doc_id = w.doc_id AND a.added = w.added"


def visible(table: str) -> str:
    """SQL condition: the row exists in generation ``%(g)s``."""
    return f"{table}.added <= %(g)s AND ({table}.removed IS NULL OR {table}.removed > %(g)s)"


def _mark(name: str) -> str:
    return f"%({name})s"


def vector_literal(vector: np.ndarray) -> str:
    """pgvector's text form; Python's repr of each float32 (as a double) reads back as the same float32."""
    return "[" + ",".join(map(repr, np.asarray(vector, dtype=np.float32).tolist())) + "]"


def _parse_vector(text: str) -> np.ndarray:
    return np.array(json.loads(text), dtype=np.float32)


class IndexUnavailable(StoreError):
    """The index database failed mid-query: the server stopped or restarted, the network dropped."""


_LOST = (psycopg.OperationalError, psycopg.InterfaceError)  # a connection lost or closed, a server shutting down


class _GuardedCursor(psycopg.Cursor):
    """A cursor whose lost connection is :class:`IndexUnavailable`, whichever query meets it.

    Without it a server restarted under a running ``rag serve`` surfaced as a raw psycopg traceback (or a
    500 from the API) naming neither the index nor what to do.
    """

    def _guarded(self, call, *args, **kwargs):
        try:
            return call(*args, **kwargs)
        except _LOST as exc:
            raise _unavailable(self.connection, exc) from exc

    def execute(self, *args, **kwargs):
        return self._guarded(super().execute, *args, **kwargs)

    def executemany(self, *args, **kwargs):
        return self._guarded(super().executemany, *args, **kwargs)

    def fetchone(self):
        return self._guarded(super().fetchone)

    def fetchall(self):
        return self._guarded(super().fetchall)

    def fetchmany(self, *args, **kwargs):
        return self._guarded(super().fetchmany, *args, **kwargs)

    def __iter__(self):
        return iter(self.fetchall())

    @contextmanager
    def copy(self, *args, **kwargs):
        try:
            with super().copy(*args, **kwargs) as copy:
                yield copy
        except _LOST as exc:
            raise _unavailable(self.connection, exc) from exc


class _Connection(psycopg.Connection):
    url = ""  # redacted, for messages

    def cursor(self, *args, **kwargs):
        """A :class:`_GuardedCursor`; a connection already closed by a failure is :class:`IndexUnavailable` too."""
        try:
            return super().cursor(*args, **kwargs)
        except _LOST as exc:
            raise _unavailable(self, exc) from exc


def _unavailable(db: _Connection, exc: Exception) -> IndexUnavailable:
    return IndexUnavailable(f"the index database {db.url} failed mid-query ({str(exc).strip() or type(exc).__name__}); "
                            "check that the server is running and reachable, then retry")


def connect(url: str) -> _Connection:
    """An autocommit connection whose failures mid-query are :class:`IndexUnavailable`; a clear error naming the
    database (without its password) when it cannot connect."""
    try:
        db = _Connection.connect(url, autocommit=True, cursor_factory=_GuardedCursor)
    except psycopg.OperationalError as exc:
        raise StoreError(f"cannot connect to the index database {redacted(url)} ({str(exc).strip()}); "
                         "check the URL in --index / RAG_INDEX and that the server is running") from exc
    db.url = redacted(url)
    return db


def migrate(db: psycopg.Connection) -> None:
    """Apply the numbered migrations this database lacks, each in its own transaction, under the writer lock."""
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY + 1,))
        db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, "
                   "applied_at timestamptz NOT NULL DEFAULT now())")
        done = {row[0] for row in db.execute("SELECT version FROM schema_migrations")}
        for version, sql in MIGRATIONS:
            if version not in done:
                db.execute(sql)
                db.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))


def _manifest(data: dict) -> Manifest:
    known = {f.name for f in fields(Manifest)}
    return Manifest(**{key: value for key, value in data.items() if key in known})


def _live(db: psycopg.Connection) -> tuple[int, Manifest, dict] | None:
    """The live generation number, its manifest and statistics; None before the first publish."""
    row = db.execute("SELECT g.generation, g.manifest, g.chunks, g.terms, g.languages FROM rag_state s "
                     "JOIN generations g ON g.generation = s.generation").fetchone()
    if row is None:
        return None
    generation, manifest, chunks, terms, languages = row
    return generation, _manifest(manifest), {"chunks": chunks, "terms": terms, "languages": languages}


class PostgresStore:
    """One published generation of the database's index, read-only."""

    def __init__(self, url: str, db: psycopg.Connection, generation: int, manifest: Manifest, stats: dict):
        self.url = url
        self.db = db
        self.manifest = manifest
        self.stats = stats
        self._g = {"g": generation}
        self._centroids: LanguageCentroids | None = None

    @classmethod
    def open(cls, url: str) -> PostgresStore:
        db = connect(url)
        migrate(db)
        live = _live(db)
        if live is None:
            db.close()
            raise IndexMissing(f"no index in {redacted(url)}; run `rag index` to build it")
        if live[1].format != FORMAT:
            db.close()
            raise IndexCorrupt(f"the index in {redacted(url)} is in on-disk format {live[1].format}, this version "
                               f"reads {FORMAT}; run `rag index` to rebuild it")
        db.execute(f"SET hnsw.ef_search = {EF_SEARCH}")
        return cls(url, db, *live)

    def close(self) -> None:
        self.db.close()

    def _rows(self, sql: str, params: dict | None = None) -> list[tuple]:
        return self.db.execute(sql, {**self._g, **(params or {})}).fetchall()

    def is_current(self) -> bool:
        row = self.db.execute("SELECT generation FROM rag_state").fetchone()
        return row is not None and row[0] == self._g["g"]

    # ------------------------------------------------------------ dense search

    def search(self, query: np.ndarray, k: int, filters: SearchFilters | None = None) -> Ranking:
        """HNSW over everything; a filter admitting few chunks is scored exactly, and HNSW falls back to exact
        whenever its candidates (``ef_search``, filtered afterwards) hold fewer than ``k`` admitted chunks."""
        where, params = filter_sql(filters, _mark) if filters else ("1 = 1", {})
        params = {**params, "q": vector_literal(query), "k": k}
        admitted = self.manifest.chunks
        if filters:
            admitted = self._rows(f"SELECT count(*) FROM {PASSAGE_JOIN} WHERE {visible('c')} AND {where}", params)[0][0]
        k = min(k, admitted)
        if k <= 0:
            return []
        if admitted >= EXACT_BELOW or not filters:
            found = self._rows(
                f"SELECT c.id, 1 - (c.embedding <=> %(q)s::vector) FROM {PASSAGE_JOIN} WHERE {visible('c')} "
                f"AND {where} ORDER BY c.embedding <=> %(q)s::vector LIMIT %(k)s", params)
            if len(found) == k:
                return [(int(i), float(s)) for i, s in found]
        exact = self._rows(  # the inner product, which the HNSW index cannot serve: a scan of the admitted rows
            f"SELECT c.id, -(c.embedding <#> %(q)s::vector) AS score FROM {PASSAGE_JOIN} WHERE {visible('c')} "
            f"AND {where} ORDER BY score DESC, c.id LIMIT %(k)s", params)
        return [(int(i), float(s)) for i, s in exact]

    # ------------------------------------------------------------ lexical search

    def lexical_search(self, question: str, k: int, filters: SearchFilters | None = None) -> tuple[Ranking, Ranking]:
        """BM25 (Robertson/Lucene, bm25s's parameters) by the question's names and numbers, and by all its words
        over the passages in its language; the statistics are the whole generation's, whatever the filter."""
        by_names = self._bm25(list(name_tokens(question)), k, filters)
        by_words = self._bm25(lexical_tokens(question), k, filters, lang=detect_language(question))
        return by_names, by_words

    def _bm25(self, tokens: list[str], k: int, filters: SearchFilters | None, lang: str | None = None) -> Ranking:
        chunks = self.stats["chunks"]
        if not tokens or not chunks:
            return []
        counts = Counter(tokens)
        df = dict(self._rows(f"SELECT t.term, count(*) FROM chunk_terms t JOIN chunks c ON c.id = t.chunk_id "
                             f"WHERE t.term = ANY(%(terms)s) AND {visible('c')} GROUP BY t.term",
                             {"terms": list(counts)}))
        if not df:
            return []
        terms = list(df)
        weights = [counts[t] * math.log(1 + (chunks - df[t] + 0.5) / (df[t] + 0.5)) for t in terms]
        where, params = filter_sql(filters, _mark) if filters else ("1 = 1", {})
        if lang is not None:
            where, params = f"{where} AND c.lang = %(lang)s", {**params, "lang": lang}
        rows = self._rows(
            f"WITH q(term, weight) AS (SELECT * FROM unnest(%(terms)s::text[], %(weights)s::float8[])) "
            f"SELECT c.id, SUM(q.weight * t.tf / (t.tf + %(k1)s * (1 - %(b)s + %(b)s * c.n_terms / %(avgdl)s))) AS s "
            f"FROM q JOIN chunk_terms t ON t.term = q.term JOIN {PASSAGE_JOIN} ON c.id = t.chunk_id "
            f"WHERE {visible('c')} AND {where} GROUP BY c.id ORDER BY s DESC, c.id LIMIT %(k)s",
            {**params, "terms": terms, "weights": weights, "k1": BM25_K1, "b": BM25_B, "k": k,
             "avgdl": max(self.stats["terms"] / chunks, 1e-9)})
        return [(int(i), float(s)) for i, s in rows if s > 0]

    # ------------------------------------------------------------ rows

    def vectors_for(self, row_ids: Iterable[int]) -> np.ndarray:
        ids = [int(i) for i in row_ids]
        found = dict(self.db.execute("SELECT id, embedding::text FROM chunks WHERE id = ANY(%s)", (ids,)).fetchall())
        missing = [i for i in ids if i not in found]
        if missing:
            raise KeyError(f"no stored vector for chunk row(s) {missing[:5]}")
        if not ids:
            return np.zeros((0, self.manifest.dim), dtype=np.float32)
        return np.vstack([_parse_vector(found[i]) for i in ids])

    def sentence_vectors(self, row_ids: Iterable[int]) -> dict[int, SentenceVectors]:
        ids = list(dict.fromkeys(int(i) for i in row_ids))
        rows = self.db.execute("SELECT id, sentence_spans, sentence_vectors FROM chunks WHERE id = ANY(%s)", (ids,))
        return {row_id: SentenceVectors.from_bytes([tuple(span) for span in json.loads(spans)], blob, self.manifest.dim)
                for row_id, spans, blob in rows}

    def passages(self, row_ids: Iterable[int]) -> dict[int, Passage]:
        ids = [int(i) for i in row_ids]
        if not ids:
            return {}
        rows = self.db.execute(f"SELECT {PASSAGE_COLUMNS} FROM {PASSAGE_JOIN} WHERE c.id = ANY(%s)", (ids,))
        return {row[0]: Passage(*row) for row in rows}

    def all_passages(self) -> list[Passage]:
        return [Passage(*row) for row in self._rows(
            f"SELECT {PASSAGE_COLUMNS} FROM {PASSAGE_JOIN} WHERE {visible('c')} ORDER BY c.id")]

    def chunk_rows(self, doc_ids: Iterable[str]) -> list[int]:
        doc_ids = list(doc_ids)
        if not doc_ids:
            return []
        return [row[0] for row in self._rows(
            f"SELECT c.id FROM chunks c WHERE c.doc_id = ANY(%(d)s) AND {visible('c')} ORDER BY c.id",
            {"d": doc_ids})]

    def name_spread(self, keys: Iterable[str]) -> dict[str, int]:
        keys = list(keys)
        if not keys:
            return {}
        return dict(self._rows(
            f"SELECT n.key, COUNT(DISTINCT c.doc_id) FROM chunk_names n JOIN chunks c ON c.id = n.chunk_id "
            f"WHERE n.key = ANY(%(k)s) AND {visible('c')} GROUP BY n.key", {"k": keys}))

    def names_in_articles(self, keys: Iterable[str], doc_ids: Iterable[str] | None = None,
                          filters: SearchFilters | None = None) -> dict[str, set[str]]:
        keys = list(keys)
        doc_ids = None if doc_ids is None else list(doc_ids)
        if not keys or doc_ids == []:
            return {}
        where, params = filter_sql(filters, _mark) if filters else ("1 = 1", {})
        if doc_ids is not None:
            where, params = f"{where} AND c.doc_id = ANY(%(d)s)", {**params, "d": doc_ids}
        named: dict[str, set[str]] = {}
        for doc_id, key in self._rows(
                f"SELECT DISTINCT c.doc_id, n.key FROM chunk_names n JOIN {PASSAGE_JOIN} ON c.id = n.chunk_id "
                f"WHERE n.key = ANY(%(k)s) AND {visible('c')} AND {where}", {**params, "k": keys}):
            named.setdefault(doc_id, set()).add(key)
        return named

    def word_spread(self, words: Iterable[str]) -> dict[str, tuple[int, int]]:
        words = list(set(words))
        if not words:
            return {}
        return {word: (int(in_text), int(in_name)) for word, in_text, in_name in self._rows(
            f"SELECT w.word, SUM(w.in_text), SUM(w.in_name) FROM {WORDS_JOIN} WHERE w.word = ANY(%(w)s) "
            f"AND {visible('a')} GROUP BY w.word", {"w": words})}

    def articles_with_words(self, words: Iterable[str], doc_ids: Iterable[str] | None = None) -> dict[str, set[str]]:
        words = list(set(words))
        where, params = "", {"w": words}
        if doc_ids is not None:
            where, params = " AND w.doc_id = ANY(%(d)s)", {**params, "d": list(doc_ids)}
        found: dict[str, set[str]] = {}
        if words:
            for doc_id, word in self._rows(f"SELECT w.doc_id, w.word FROM {WORDS_JOIN} WHERE w.in_text = 1 AND "
                                           f"w.word = ANY(%(w)s){where} AND {visible('a')}", params):
                found.setdefault(doc_id, set()).add(word)
        return found

    def mentions_phrase(self, tokens: list[str], rarest: str) -> bool:
        return bool(self._rows(
            f"SELECT 1 FROM {WORDS_JOIN} JOIN article_tokens t ON t.doc_id = w.doc_id AND t.added = w.added "
            f"WHERE w.word = %(word)s AND w.in_text = 1 AND {visible('a')} "
            "AND strpos(' ' || t.tokens || ' ', %(phrase)s) > 0 LIMIT 1",
            {"word": rarest, "phrase": f" {' '.join(tokens)} "}))

    def fingerprints(self) -> dict[str, str]:
        return dict(self._rows(f"SELECT doc_id, fingerprint FROM articles a WHERE {visible('a')}"))

    def article(self, doc_id: str) -> Article | None:
        rows = self._rows(f"SELECT {ARTICLE_COLUMNS} FROM articles a WHERE a.doc_id = %(d)s AND {visible('a')}",
                          {"d": doc_id})
        return Article(*rows[0]) if rows else None

    def articles(self, offset: int = 0, limit: int | None = None) -> list[Article]:
        return [Article(*row) for row in self._rows(
            f"SELECT {ARTICLE_COLUMNS} FROM articles a WHERE {visible('a')} ORDER BY a.doc_id "
            "LIMIT %(n)s OFFSET %(o)s", {"n": limit, "o": offset})]

    def centroids(self) -> LanguageCentroids:
        if self._centroids is None:
            self._centroids = LanguageCentroids.from_sums(_sums(self.stats["languages"]))
        return self._centroids


def _sums(languages: dict) -> LanguageSums:
    """The stored per-language statistics: (sum of the chunk vectors, chunks, articles)."""
    return {lang: (np.array(v["sum"], dtype=np.float64), v["chunks"], v["articles"]) for lang, v in languages.items()}


# --------------------------------------------------------------------- writing


def writer_lock(url: str):
    """The one-writer lock of a database: a session advisory lock (released by the server if the process dies),
    re-entrant in the thread holding it, like :func:`rag.store.writer_lock`."""

    def acquire():
        db = connect(url)
        db.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        return db

    return reentrant_writer_lock(url, acquire, lambda db: db.close())  # closing the session releases the lock


class PostgresWriter:
    """The next generation, written in one transaction and published by :meth:`commit`."""

    def __init__(self, db: psycopg.Connection, manifest: Manifest, start_empty: bool):
        self.db = db
        live = _live(db)
        previous = live[0] if live else 0
        self.g = previous + 1
        self.manifest = replace(manifest, generation=self.g, layout=LAYOUT, base_generation=self.g, metadata="")
        self.chunks, self.terms, self.languages = (0, 0, {}) if live is None else (
            live[2]["chunks"], live[2]["terms"], _sums(live[2]["languages"]))
        self._prepare_vectors(manifest.dim)
        self._forget_old(previous)
        if start_empty:
            self._remove("TRUE")
            self.chunks, self.terms, self.languages = 0, 0, {}  # counted after the removal, which subtracts
        self.committed = False

    def _prepare_vectors(self, dim: int) -> None:
        """Give the vector column its dimension and the HNSW index (a new dimension is a new index: start over)."""
        current = self.db.execute("SELECT atttypmod FROM pg_attribute WHERE attrelid = 'chunks'::regclass "
                                  "AND attname = 'embedding'").fetchone()[0]
        if current == dim:
            return
        for table in ("chunk_terms", "chunk_names", "chunks", "articles"):  # article_words and _tokens cascade
            self.db.execute(f"DELETE FROM {table}")
        self.chunks, self.terms, self.languages = 0, 0, {}
        self.db.execute("DROP INDEX IF EXISTS chunks_embedding")
        self.db.execute(f"ALTER TABLE chunks ALTER COLUMN embedding TYPE vector({int(dim)})")
        self.db.execute("CREATE INDEX chunks_embedding ON chunks USING hnsw (embedding vector_cosine_ops)")

    def _forget_old(self, live: int) -> None:
        """Drop rows no reader needs: those removed before the generation preceding the live one."""
        params = {"old": live - 1}
        for table in ("chunks", "articles"):
            self.db.execute(f"DELETE FROM {table} WHERE removed <= %(old)s", params)
        self.db.execute("DELETE FROM generations WHERE generation < %(old)s", params)

    def remove_articles(self, doc_ids: Iterable[str]) -> int:
        doc_ids = list(doc_ids)
        return self._remove("doc_id = ANY(%(d)s)", {"d": doc_ids}) if doc_ids else 0

    def _remove(self, condition: str, params: dict | None = None) -> int:
        """Mark removed the live articles matching ``condition`` and their chunks; take them out of the statistics."""
        params = {**(params or {}), "g": self.g}
        for (lang,) in self.db.execute(f"UPDATE articles SET removed = %(g)s WHERE removed IS NULL AND {condition} "
                                       "RETURNING lang", params).fetchall():
            add_to_sums(self.languages, lang, 0.0, 0, -1)
        rows = self.db.execute(
            f"UPDATE chunks SET removed = %(g)s WHERE removed IS NULL AND {condition} "
            "RETURNING lang, n_terms, embedding::text", params).fetchall()
        for lang, n_terms, vector in rows:
            add_to_sums(self.languages, lang, -_parse_vector(vector).astype(np.float64), -1, 0)
            self.terms -= n_terms
        self.chunks -= len(rows)
        return len(rows)

    def add_article(self, article: Article, chunks: list[Chunk], vectors: np.ndarray, sentences: list[SentenceVectors],
                    derived: list[tuple[frozenset[str], list[str]]], vocabulary: ArticleVocabulary) -> None:
        params = {**asdict(article), "day": _day(article.date), "g": self.g}
        self.db.execute("INSERT INTO articles (doc_id, title, text, lang, url, date, location, fingerprint, source, "
                        "day, added) VALUES (%(doc_id)s, %(title)s, %(text)s, %(lang)s, %(url)s, %(date)s, "
                        "%(location)s, %(fingerprint)s, %(source)s, %(day)s, %(g)s)", params)
        self._write_vocabulary(article.doc_id, self.g, vocabulary)
        vectors = np.asarray(vectors, dtype=np.float32)
        ids = [row[0] for row in self.db.execute(
            "SELECT nextval(pg_get_serial_sequence('chunks', 'id')) FROM generate_series(1, %s)", (len(chunks),))]
        self._copy('chunks (id, doc_id, position, start, "end", n_tokens, text, lang, embedding, sentence_spans, '
                   "sentence_vectors, n_terms, added)",
                   ((i, c.doc_id, c.position, c.start, c.end, c.n_tokens, c.text, article.lang, vector_literal(v),
                     json.dumps(s.spans), s.to_bytes(), len(tokens), self.g)
                    for i, c, v, s, (_, tokens) in zip(ids, chunks, vectors, sentences, derived, strict=True)))
        self._write_derived_text((i, keys, tokens) for i, (keys, tokens) in zip(ids, derived))
        add_to_sums(self.languages, article.lang, vectors.astype(np.float64).sum(axis=0), len(chunks), 1)
        self.chunks += len(chunks)
        self.terms += sum(len(tokens) for _, tokens in derived)

    def _copy(self, target: str, rows: Iterable[tuple]) -> None:
        """``rows`` into ``target`` (a table and its columns) by COPY: bulk rows at a fraction of INSERTs' cost
        (filling 10k chunks row by row took 3x the embedded store's time, bench/README.md §10)."""
        with self.db.cursor() as cursor, cursor.copy(f"COPY {target} FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def _write_derived_text(self, rows: Iterable[tuple[int, frozenset[str], list[str]]]) -> None:
        """Each chunk's (row id, name keys, lexical tokens) as its names and term frequencies."""
        rows = list(rows)
        self._copy("chunk_names (key, chunk_id)", ((key, i) for i, keys, _ in rows for key in sorted(keys)))
        self._copy("chunk_terms (term, chunk_id, tf)",
                   ((term, i, tf) for i, _, tokens in rows for term, tf in Counter(tokens).items()))

    def _write_vocabulary(self, doc_id: str, added: int, vocabulary: ArticleVocabulary) -> None:
        self._copy("article_words (word, doc_id, added, in_text, in_name)", vocabulary_rows(doc_id, added, vocabulary))
        self.db.execute("INSERT INTO article_tokens (doc_id, added, tokens) VALUES (%s, %s, %s)",
                        (doc_id, added, " ".join(vocabulary.tokens)))

    def passages(self) -> list[Passage]:
        rows = self.db.execute(f"SELECT {PASSAGE_COLUMNS} FROM {PASSAGE_JOIN} WHERE {visible('c')} ORDER BY c.id",
                               {"g": self.g})
        return [Passage(*row) for row in rows]

    def articles(self) -> list[Article]:
        rows = self.db.execute(f"SELECT {ARTICLE_COLUMNS} FROM articles a WHERE {visible('a')} ORDER BY a.doc_id",
                               {"g": self.g})
        return [Article(*row) for row in rows]

    def replace_derived_text(self, rows: Iterable[tuple[int, frozenset[str], list[str]]],
                             vocabularies: Iterable[tuple[str, ArticleVocabulary]]) -> None:
        """Replace every chunk's name keys and lexical tokens and every article's vocabulary (another names version
        found them)."""
        rows, vocabularies = list(rows), list(vocabularies)
        for table in ("chunk_names", "chunk_terms", "article_words", "article_tokens"):
            self.db.execute(f"DELETE FROM {table}")
        self._write_derived_text(rows)
        self.db.execute("UPDATE chunks SET n_terms = v.n FROM unnest(%s::bigint[], %s::int[]) AS v(id, n) "
                        "WHERE chunks.id = v.id", ([i for i, _, _ in rows], [len(tokens) for _, _, tokens in rows]))
        added = dict(self.db.execute(f"SELECT doc_id, added FROM articles a WHERE {visible('a')}", {"g": self.g}))
        for doc_id, vocabulary in vocabularies:
            self._write_vocabulary(doc_id, added[doc_id], vocabulary)
        self.terms = self.db.execute(f"SELECT COALESCE(SUM(n_terms), 0) FROM chunks c WHERE {visible('c')}",
                                     {"g": self.g}).fetchone()[0]

    def commit(self) -> Manifest:
        """Write this generation's statistics and point ``rag_state`` at it; the transaction commits on leaving."""
        articles = self.db.execute(f"SELECT COUNT(*) FROM articles a WHERE {visible('a')}", {"g": self.g}).fetchone()[0]
        manifest = replace(self.manifest, built_at=time.time(), articles=articles, chunks=self.chunks,
                           base_chunks=self.chunks)
        languages = {lang: {"sum": total.tolist(), "chunks": n, "articles": a}
                     for lang, (total, n, a) in self.languages.items() if n > 0}
        self.db.execute("INSERT INTO generations (generation, manifest, chunks, terms, languages) "
                        "VALUES (%s, %s, %s, %s, %s)",
                        (self.g, json.dumps(asdict(manifest)), self.chunks, self.terms, json.dumps(languages)))
        self.db.execute("INSERT INTO rag_state (id, generation) VALUES (1, %s) "
                        "ON CONFLICT (id) DO UPDATE SET generation = excluded.generation", (self.g,))
        self.committed = True
        self.manifest = manifest
        return manifest


def _day(date: str | None) -> str | None:
    day = article_day(date)
    return day.isoformat() if day else None


class PostgresBackend:
    """A PostgreSQL database with pgvector, shared by every server pointed at it."""

    def __init__(self, url: str):
        self.url = url

    def __str__(self) -> str:
        return redacted(self.url)

    def exists(self) -> bool:
        with connect(self.url) as db:
            migrate(db)
            return _live(db) is not None

    def open(self) -> PostgresStore:
        return PostgresStore.open(self.url)

    def live_fingerprints(self) -> tuple[Manifest, dict[str, str]]:
        store = self.open()
        try:
            return store.manifest, store.fingerprints()
        finally:
            store.close()

    def writer_lock(self):
        return writer_lock(self.url)

    @contextmanager
    def writer(self, manifest: Manifest, *, start_empty: bool, ivf_threshold: int) -> Iterator[PostgresWriter]:
        """One transaction under the writer lock: leaving the block without :meth:`PostgresWriter.commit`
        (an exception, Ctrl-C, a killed process) rolls everything back."""
        with writer_lock(self.url), connect(self.url) as db:
            migrate(db)
            try:
                with db.transaction():
                    writer = PostgresWriter(db, manifest, start_empty)
                    yield writer
                    if not writer.committed:
                        raise _Uncommitted
            except _Uncommitted:
                pass
            except psycopg.Error as exc:
                raise IndexCorrupt(f"writing the index in {redacted(self.url)} failed ({exc}); nothing was changed") \
                    from exc

    def derived_missing(self) -> bool:
        return False  # the statistics are written in the same transaction as the rows they describe


class _Uncommitted(Exception):
    """Leaves the writer's transaction without publishing (rolled back)."""
