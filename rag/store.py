"""The index on disk: SQLite rows (with the vectors), a FAISS index over them, published in atomic generations.

Layout of an index folder::

    index/
      CURRENT              name of the live generation (replaced atomically)
      meta-<gen>.sqlite    articles and chunks with their vectors and their sentences' vectors (so
                           re-ranking and citing embed nothing per question), shared by the generations
                           since the last full build; each row records the generation that added it
                           and the one that removed it; ``chunk_names`` and ``chunk_tokens`` hold the
                           name keys and lexical tokens of each chunk (with its article's title),
                           derived from the stored text and recomputed without re-embedding when
                           the names version changes; ``article_words`` and ``article_tokens`` hold
                           each article's vocabulary (rag.names.NameVocabulary), likewise
      gen-<n>-<pid>-<ns>/  one generation
        manifest.json      model, dimension, chunking parameters, counts, generation number
        vectors.faiss      the FAISS index as of generation ``base_generation``; immutable, so a later
                           generation that does not rewrite it shares the file through a hard link
      .lock                held by the one writer at a time

Why this shape: a generation used to be a full copy of the previous one, so
adding one article to a 100k-chunk index paid 1–2 s of copying and fsync on
top of its own embedding, growing with the index (bench/results-scale.md).  Now a
writer only appends rows tagged with the next generation number, marks
removed rows, and links the previous ``vectors.faiss``.  Readers see the rows
with ``added <= g < removed`` of their generation ``g``, and apply the few
rows added or removed since the FAISS file's base generation (the *delta*,
whose vectors are in SQLite) when they open it.  When the delta grows past
:data:`DELTA_FRACTION` of the index, or the size calls for another index type
(see :func:`choose_layout`), the writer writes a fresh ``vectors.faiss``.

Crash safety: nothing is visible before ``CURRENT`` names the new generation.
Rows of a generation that was never published (a crash between the SQLite
commit and the switch) are invisible to readers of the live one and are
deleted by the next writer.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import faiss
import numpy as np

from .chunking import Chunk
from .corpus import Article
from .errors import UserError
from .filters import SearchFilters, article_day, filter_sql

if TYPE_CHECKING:
    from .names import ArticleVocabulary

CURRENT = "CURRENT"
MANIFEST = "manifest.json"
VECTORS = "vectors.faiss"
FORMAT = 6  # on-disk layout; an index of another format is rebuilt (4: sentence vectors pooled from the chunk;
#            5: articles carry their source site and day, what search filters match; 6: sentences read alone too)
FLAT = "flat"
DELTA_FRACTION = 0.05  # rewrite vectors.faiss when more rows than this share changed since it was written
TRAIN_POINTS_PER_LIST = 64  # k-means sample per IVF list: FAISS warns below 39, quality barely moves above 64
SQL_BATCH = 10_000  # ids per IN (...) query: SQLite allows 32766 parameters
NPROBE = 32  # IVF lists searched per query (all of them in a small index): see bench/results-scale.md
SCHEMA = """
CREATE TABLE IF NOT EXISTS articles (
    doc_id TEXT NOT NULL, title TEXT NOT NULL, text TEXT NOT NULL, lang TEXT NOT NULL,
    url TEXT, date TEXT, location TEXT NOT NULL, fingerprint TEXT NOT NULL,
    source TEXT, day TEXT,
    added INTEGER NOT NULL, removed INTEGER,
    PRIMARY KEY (doc_id, added)
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, doc_id TEXT NOT NULL,
    position INTEGER NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL,
    n_tokens INTEGER NOT NULL, text TEXT NOT NULL, vector BLOB NOT NULL,
    sentence_spans TEXT NOT NULL, sentence_vectors BLOB NOT NULL,
    added INTEGER NOT NULL, removed INTEGER
);
CREATE TABLE IF NOT EXISTS chunk_names (
    chunk_id INTEGER NOT NULL, key TEXT NOT NULL, PRIMARY KEY (chunk_id, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chunk_names_key ON chunk_names(key, chunk_id);
CREATE TABLE IF NOT EXISTS chunk_tokens (chunk_id INTEGER PRIMARY KEY, tokens TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS article_words (
    word TEXT NOT NULL, doc_id TEXT NOT NULL, added INTEGER NOT NULL, in_text INTEGER NOT NULL,
    in_name INTEGER NOT NULL, PRIMARY KEY (word, doc_id, added)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS article_words_article ON article_words(doc_id, added);
CREATE TABLE IF NOT EXISTS article_tokens (
    doc_id TEXT NOT NULL, added INTEGER NOT NULL, tokens TEXT NOT NULL, PRIMARY KEY (doc_id, added)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE INDEX IF NOT EXISTS chunks_generations ON chunks(added, removed);
CREATE INDEX IF NOT EXISTS chunks_removed ON chunks(removed);
CREATE INDEX IF NOT EXISTS articles_removed ON articles(removed);
CREATE INDEX IF NOT EXISTS articles_generations ON articles(added, removed, doc_id, fingerprint);
"""
PASSAGE_COLUMNS = "c.id, c.doc_id, c.position, a.title, a.url, a.lang, a.date, c.text, c.start, c.end, a.source"
ARTICLE_COLUMNS = "a.doc_id, a.title, a.text, a.lang, a.url, a.date, a.location, a.fingerprint, a.source"
PASSAGE_JOIN = "chunks c JOIN articles a ON a.doc_id = c.doc_id AND a.added = c.added"
WORDS_JOIN = "article_words w JOIN articles a ON a.doc_id = w.doc_id AND a.added = w.added"
ARTICLE_VOCABULARY = ("article_words", "article_tokens")  # keyed by the article row (doc_id, added)


def visible(table: str) -> str:
    """SQL condition: the row exists in generation ``:g``."""
    return f"{table}.added <= :g AND ({table}.removed IS NULL OR {table}.removed > :g)"


class StoreError(UserError):
    """Base for index problems; messages say what to run."""


class IndexMissing(StoreError):
    pass


class IndexCorrupt(StoreError):
    pass


class IndexOutdated(StoreError):
    """Written by an older version that lacked data this one reads; an update with write access brings it up."""


@dataclass(frozen=True)
class Manifest:
    """What the vectors mean, and where this generation's data is.

    Any difference in the fields of :meth:`compatible_with` forces a full rebuild.
    """

    model: str
    model_fingerprint: str
    dim: int
    chunk_tokens: int
    chunk_overlap: int
    encoding: str
    parser_version: str
    built_at: float = 0.0
    articles: int = 0
    chunks: int = 0
    format: int = FORMAT
    generation: int = 0
    base_generation: int = 0  # the generation vectors.faiss was written at
    base_chunks: int = 0  # vectors in vectors.faiss
    layout: str = FLAT  # what vectors.faiss is: "flat" or "ivf<lists>"
    metadata: str = ""  # the SQLite file, in the index folder
    names_version: str = ""  # what computed chunk_names (rag.indexing.names_version); another one recomputes them
    vectors_crc: int | None = None  # CRC-32 of vectors.faiss, checked when it is read (None: written before)

    def compatible_with(self, other: Manifest) -> bool:
        keys = ("model_fingerprint", "dim", "chunk_tokens", "chunk_overlap", "encoding", "parser_version")
        return all(getattr(self, key) == getattr(other, key) for key in keys)

    @classmethod
    def read(cls, generation: Path) -> Manifest:
        data = json.loads((generation / MANIFEST).read_text())
        if data.get("format") != FORMAT:
            raise ValueError(f"written in on-disk format {data.get('format', 1)}, this version reads {FORMAT}")
        return cls(**data)


@dataclass(frozen=True)
class Passage:
    """A stored chunk with its article's metadata: what retrieval returns and citations show."""

    row_id: int
    doc_id: str
    position: int
    title: str
    url: str | None
    lang: str
    date: str | None
    text: str
    start: int
    end: int
    source: str | None = None

    @property
    def chunk_id(self) -> str:
        return f"{self.doc_id}#{self.position}"


@dataclass(frozen=True)
class SentenceVectors:
    """The sentences of one chunk (character spans in its text) and their embeddings, two per sentence.

    A question usually asks about one sentence of a passage: re-ranking and
    extractive answers use the best sentence, and citations the sentence
    closest to a claim.  Embedding them per question cost ~0.9 s of a 1 s
    search (bench/README.md), so both are made at index time:

    - ``vectors`` are pooled from the chunk's own forward pass, read in
      context (:meth:`rag.embeddings.Embedder.embed_passages_and_spans`): a
      sentence then carries the names its article gave earlier, which is what
      picking an answer sentence and checking a claim need;
    - ``alone`` are the same sentences encoded on their own. Re-ranking takes
      the better of the two (:meth:`best_score`, setting
      ``rerank_sentences_alone``): a context-read sentence is
      close to its chunk's vector and adds little to it, and on the external
      benchmark and the grown corpus the better of both ranked answers higher
      than either (bench/README §9, "Sentences read alone as well").

    Stored as float16, which halves the disk and moves cosines by ~1e-3.
    """

    spans: list[tuple[int, int]]
    vectors: np.ndarray  # one row per span, float32
    alone: np.ndarray  # one row per span, float32

    def texts(self, text: str) -> list[str]:
        return [text[start:end] for start, end in self.spans]

    def closest(self, vector: np.ndarray) -> tuple[int, float]:
        """The index of the sentence (read in context) closest to ``vector`` and its cosine similarity."""
        scores = self.vectors @ vector
        best = int(np.argmax(scores))
        return best, float(scores[best])

    def best_score(self, vector: np.ndarray) -> float:
        """The highest cosine of ``vector`` to any sentence, read in context or alone."""
        return float(max(np.max(self.vectors @ vector), np.max(self.alone @ vector)))

    def to_bytes(self) -> bytes:
        """Both sets of vectors as one float16 blob: the context-read rows, then the rows read alone."""
        return np.vstack([self.vectors, self.alone]).astype(np.float16).tobytes()

    @classmethod
    def from_bytes(cls, spans: list[tuple[int, int]], blob: bytes, dim: int) -> SentenceVectors:
        rows = np.frombuffer(blob, dtype=np.float16).reshape(-1, dim).astype(np.float32)
        if len(rows) != 2 * len(spans):
            raise ValueError(f"{len(rows)} sentence vectors stored for {len(spans)} sentences, not two each")
        return cls(spans, rows[: len(spans)], rows[len(spans) :])


# --------------------------------------------------------------------- choosing and building the FAISS index


def ivf_lists(n: int) -> int:
    """IVF lists for ``n`` vectors: the usual ~4·sqrt(n), but never fewer than 39 training points per list."""
    return max(1, min(int(4 * n**0.5), n // 39))


def choose_layout(n: int, ivf_threshold: int, current: str | None = None) -> str:
    """The FAISS index type for ``n`` vectors: exact below ``ivf_threshold``, IVF with ~4·sqrt(n) lists above.

    With hysteresis, so that an index hovering around a boundary is not rebuilt
    on every update: an IVF index turns flat again only below half the
    threshold, and is retrained only when its ideal number of lists has
    doubled or halved (the size quadrupled or fell to a quarter).
    """
    is_ivf = current is not None and current != FLAT
    if n < (ivf_threshold // 2 if is_ivf else ivf_threshold):
        return FLAT
    lists = ivf_lists(n)
    if is_ivf and int(current[3:]) / 2 < lists < int(current[3:]) * 2:
        return current
    return f"ivf{lists}"


def build_index(layout: str, dim: int, vectors: np.ndarray, ids: np.ndarray) -> faiss.Index:
    """A FAISS index of ``layout`` over ``vectors``; every layout supports add, remove and reconstruct by id."""
    if layout == FLAT:
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    else:
        lists = int(layout[3:])
        index = faiss.index_factory(dim, f"IVF{lists},Flat", faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(0).permutation(len(vectors))[: lists * TRAIN_POINTS_PER_LIST]
        index.train(vectors[np.sort(sample)])
        index.set_direct_map_type(faiss.DirectMap.Hashtable)  # reconstruct and remove by id
        index.nprobe = min(lists, NPROBE)
    if len(ids):
        index.add_with_ids(vectors, ids)
    return index


def _as_vectors(blobs: list[bytes], dim: int) -> np.ndarray:
    return np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(-1, dim)


def file_crc(path: Path) -> int:
    crc = 0
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            crc = zlib.crc32(block, crc)
    return crc


def check_vectors(generation: Path, manifest: Manifest) -> None:
    """Raise :class:`IndexCorrupt` when ``vectors.faiss`` is not the file the manifest was written with.

    FAISS reads any bytes of the right length as vectors: 4 KB of garbage in the file changed the top 5
    of every question, and updates said "up to date".  The checksum costs one read of the file (~0.1 s per
    100k chunks), next to the read that loads it.
    """
    if manifest.vectors_crc is not None and file_crc(generation / VECTORS) != manifest.vectors_crc:
        raise IndexCorrupt(f"{generation / VECTORS} is damaged (its checksum does not match); "
                           "run `rag index --rebuild`")


def _open_vectors(db: sqlite3.Connection, generation: Path, manifest: Manifest) -> faiss.Index:
    """``vectors.faiss`` with the rows added or removed since it was written applied to it."""
    check_vectors(generation, manifest)
    index = faiss.read_index(str(generation / VECTORS))
    g, base = manifest.generation, manifest.base_generation
    gone = [row[0] for row in db.execute(
        "SELECT id FROM chunks WHERE added <= :b AND removed IS NOT NULL AND removed <= :g", {"b": base, "g": g}
    )]
    if gone:
        index.remove_ids(np.array(gone, dtype=np.int64))
    rows = db.execute(
        f"SELECT c.id, c.vector FROM chunks c WHERE c.added > :b AND {visible('c')} ORDER BY c.id", {"b": base, "g": g}
    ).fetchall()
    if rows:
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        index.add_with_ids(_as_vectors([r[1] for r in rows], manifest.dim), ids)
    return index


# --------------------------------------------------------------------- reading


class IndexStore:
    """A read-only view of one generation of the index."""

    def __init__(self, folder: Path, generation: Path, manifest: Manifest, db: sqlite3.Connection):
        self.folder = folder
        self.generation = generation
        self.manifest = manifest
        self.db = db
        self.vectors = _open_vectors(db, generation, manifest)
        self._g = {"g": manifest.generation}

    @classmethod
    def open(cls, folder: Path) -> IndexStore:
        with _reading(folder) as (generation, manifest, db):
            if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'article_words'").fetchone() is None:
                db.close()
                raise IndexOutdated(f"index in {folder} was written by an older version (it lacks the articles' "
                                    "vocabulary); run `rag index` with write access to it")
            store = cls(Path(folder), generation, manifest, db)
            stored = db.execute(f"SELECT COUNT(*) FROM chunks c WHERE {visible('c')}", store._g).fetchone()[0]
            if stored != store.vectors.ntotal:
                raise IndexCorrupt(
                    f"index in {folder} is inconsistent ({stored} chunks, {store.vectors.ntotal} vectors); "
                    "run `rag index --rebuild`"
                )
        return store

    def close(self) -> None:
        self.db.close()

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Row ids and cosine scores of the ``k`` nearest chunks."""
        if self.vectors.ntotal == 0:
            return []
        scores, ids = self.vectors.search(query.reshape(1, -1).astype(np.float32), min(k, self.vectors.ntotal))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def vectors_for(self, row_ids: Iterable[int]) -> np.ndarray:
        """The stored (exact) vectors of these chunks, in the order given."""
        ids = list(row_ids)
        found: dict[int, bytes] = {}
        for first in range(0, len(ids), SQL_BATCH):
            batch = ids[first : first + SQL_BATCH]
            marks = ",".join("?" * len(batch))
            found.update(self.db.execute(f"SELECT id, vector FROM chunks WHERE id IN ({marks})", batch))
        missing = [i for i in ids if i not in found]
        if missing:
            raise KeyError(f"no stored vector for chunk row(s) {missing[:5]}")
        return _as_vectors([found[i] for i in ids], self.manifest.dim)

    def sentence_vectors(self, row_ids: Iterable[int]) -> dict[int, SentenceVectors]:
        """The sentences and sentence vectors of these chunks, by row id."""
        ids = list(dict.fromkeys(row_ids))
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(f"SELECT id, sentence_spans, sentence_vectors FROM chunks WHERE id IN ({marks})", ids)
        return {row_id: SentenceVectors.from_bytes([tuple(span) for span in json.loads(spans)], blob, self.manifest.dim)
                for row_id, spans, blob in rows}

    def passages(self, row_ids: Iterable[int]) -> dict[int, Passage]:
        ids = list(row_ids)
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(f"SELECT {PASSAGE_COLUMNS} FROM {PASSAGE_JOIN} WHERE c.id IN ({marks})", ids)
        return {row[0]: Passage(*row) for row in rows}

    def all_passages(self) -> list[Passage]:
        rows = self.db.execute(
            f"SELECT {PASSAGE_COLUMNS} FROM {PASSAGE_JOIN} WHERE {visible('c')} ORDER BY c.id", self._g
        )
        return [Passage(*row) for row in rows]

    def name_spread(self, keys: Iterable[str]) -> dict[str, int]:
        """How many articles name each of ``keys``; a key no article names is left out."""
        params, marks = _named(keys)
        if not marks:
            return {}
        rows = self.db.execute(
            f"SELECT n.key, COUNT(DISTINCT c.doc_id) FROM chunk_names n JOIN chunks c ON c.id = n.chunk_id "
            f"WHERE n.key IN ({marks}) AND {visible('c')} GROUP BY n.key", {**params, **self._g})
        return dict(rows)

    def names_in_articles(self, keys: Iterable[str], doc_ids: Iterable[str] | None = None,
                          filters: SearchFilters | None = None) -> dict[str, set[str]]:
        """Which of ``keys`` each article names in any of its chunks (articles naming none are left out).

        Only the articles ``doc_ids`` when given, else every article naming one of ``keys``; only those
        passing ``filters`` when given.
        """
        params, marks = _named(keys)
        if not marks:
            return {}
        where = ""
        if doc_ids is not None:
            doc_params, doc_marks = _named(doc_ids, "d")
            if not doc_marks:
                return {}
            params, where = {**params, **doc_params}, f" AND c.doc_id IN ({doc_marks})"
        join = ""
        if filters:
            condition, filter_params = filter_sql(filters, lambda name: f":{name}")
            params, where = {**params, **filter_params}, f"{where} AND {condition}"
            join = " JOIN articles a ON a.doc_id = c.doc_id AND a.added = c.added"
        rows = self.db.execute(
            f"SELECT DISTINCT c.doc_id, n.key FROM chunk_names n JOIN chunks c ON c.id = n.chunk_id{join} "
            f"WHERE n.key IN ({marks}) AND {visible('c')}{where}", {**params, **self._g})
        named: dict[str, set[str]] = {}
        for doc_id, key in rows:
            named.setdefault(doc_id, set()).add(key)
        return named

    def word_spread(self, words: Iterable[str]) -> dict[str, tuple[int, int]]:
        params, marks = _named(words)
        if not marks:
            return {}
        rows = self.db.execute(f"SELECT w.word, SUM(w.in_text), SUM(w.in_name) FROM {WORDS_JOIN} "
                               f"WHERE w.word IN ({marks}) AND {visible('a')} GROUP BY w.word", {**params, **self._g})
        return {word: (in_text, in_name) for word, in_text, in_name in rows}

    def articles_with_words(self, words: Iterable[str], doc_ids: Iterable[str] | None = None) -> dict[str, set[str]]:
        params, marks = _named(words)
        where = ""
        if doc_ids is not None:
            doc_params, doc_marks = _named(doc_ids, "d")
            params, where = {**params, **doc_params}, f" AND w.doc_id IN ({doc_marks or 'NULL'})"
        if not marks:
            return {}
        found: dict[str, set[str]] = {}
        for doc_id, word in self.db.execute(f"SELECT w.doc_id, w.word FROM {WORDS_JOIN} WHERE w.in_text = 1 AND "
                                            f"w.word IN ({marks}){where} AND {visible('a')}", {**params, **self._g}):
            found.setdefault(doc_id, set()).add(word)
        return found

    def mentions_phrase(self, tokens: list[str], rarest: str) -> bool:
        row = self.db.execute(
            f"SELECT 1 FROM {WORDS_JOIN} JOIN article_tokens t ON t.doc_id = w.doc_id AND t.added = w.added "
            f"WHERE w.word = :word AND w.in_text = 1 AND {visible('a')} "
            "AND instr(' ' || t.tokens || ' ', :phrase) > 0 LIMIT 1",
            {**self._g, "word": rarest, "phrase": f" {' '.join(tokens)} "}).fetchone()
        return row is not None

    def chunk_rows(self, doc_ids: Iterable[str]) -> list[int]:
        """The row ids of the chunks of these articles."""
        params, marks = _named(doc_ids, "d")
        if not marks:
            return []
        rows = self.db.execute(f"SELECT c.id FROM chunks c WHERE c.doc_id IN ({marks}) AND {visible('c')} "
                               "ORDER BY c.id", {**params, **self._g})
        return [row[0] for row in rows]

    def fingerprints(self) -> dict[str, str]:
        return dict(self.db.execute(f"SELECT doc_id, fingerprint FROM articles a WHERE {visible('a')}", self._g))

    def article(self, doc_id: str) -> Article | None:
        row = self.db.execute(
            f"SELECT {ARTICLE_COLUMNS} FROM articles a WHERE doc_id = :doc_id AND {visible('a')}",
            {**self._g, "doc_id": doc_id},
        ).fetchone()
        return Article(*row) if row else None

    def all_articles(self) -> list[Article]:
        return self.articles()

    def articles(self, offset: int = 0, limit: int | None = None) -> list[Article]:
        """Articles in id order, ``limit`` of them from ``offset`` (all when ``limit`` is None)."""
        query = f"SELECT {ARTICLE_COLUMNS} FROM articles a WHERE {visible('a')} ORDER BY doc_id LIMIT :n OFFSET :o"
        return [Article(*row) for row in self.db.execute(query, {**self._g, "n": -1 if limit is None else limit,
                                                                 "o": offset})]

    def admitted_rows(self, filters: SearchFilters) -> np.ndarray:
        """The row ids of the chunks whose article passes ``filters``, ascending."""
        where, params = filter_sql(filters, lambda name: f":{name}")
        rows = self.db.execute(f"SELECT c.id FROM {PASSAGE_JOIN} WHERE {visible('c')} AND {where} ORDER BY c.id",
                               {**params, **self._g})
        return np.array([row[0] for row in rows], dtype=np.int64)


def vocabulary_rows(doc_id: str, added: int, vocabulary: ArticleVocabulary) -> list[tuple[str, str, int, int, int]]:
    """An article's ``article_words`` rows: (word, doc id, added, in its text, in a name phrase); both backends'."""
    words = vocabulary.words
    return [(word, doc_id, added, int(word in words), int(word in vocabulary.name_words))
            for word in sorted(words | vocabulary.name_words)]


def _day(date: str | None) -> str | None:
    day = article_day(date)
    return day.isoformat() if day else None


def _named(values: Iterable[str], prefix: str = "k") -> tuple[dict[str, str], str]:
    """Named SQL parameters for ``values`` and the ``:k0,:k1,...`` list that refers to them."""
    params = {f"{prefix}{i}": value for i, value in enumerate(dict.fromkeys(values))}
    return params, ",".join(f":{name}" for name in params)


def live_fingerprints(folder: Path) -> tuple[Manifest, dict[str, str]]:
    """The live manifest and article fingerprints: what an update plans with, without loading the vectors.

    ``vectors.faiss`` is only memory-mapped to check that it is whole, so a
    corrupt index is still found (and rebuilt) before anything is added to it.
    """
    with _reading(folder) as (generation, manifest, db):
        check_vectors(generation, manifest)
        mapped = faiss.read_index(str(generation / VECTORS), faiss.IO_FLAG_MMAP_IFC)
        if mapped.ntotal != manifest.base_chunks:
            raise IndexCorrupt(f"index in {folder} is inconsistent ({VECTORS} does not match its manifest); "
                               "run `rag index --rebuild`")
        fingerprints = db.execute(f"SELECT doc_id, fingerprint FROM articles a WHERE {visible('a')}",
                                  {"g": manifest.generation})
        result = manifest, dict(fingerprints)
        db.close()
        return result


def _damaged(exc: sqlite3.DatabaseError, path: str) -> IndexCorrupt:
    return IndexCorrupt(f"index database {path} is damaged ({exc}); run `rag index --rebuild`")


class _ReadCursor(sqlite3.Cursor):
    """A cursor whose "database disk image is malformed" is :class:`IndexCorrupt`, whichever query meets it.

    SQLite finds a damaged page only when a query reads it, often long after the index was opened (a
    search, a citation); checking every page at open would cost a read of the whole database per command.
    Locks and other operational errors (subclasses) keep their own type.
    """

    def _guarded(self, call, *args):
        try:
            return call(*args)
        except sqlite3.DatabaseError as exc:
            if type(exc) is not sqlite3.DatabaseError:
                raise
            raise _damaged(exc, self.connection.path) from exc

    def execute(self, *args):
        return self._guarded(super().execute, *args)

    def fetchone(self):
        return self._guarded(super().fetchone)

    def fetchall(self):
        return self._guarded(super().fetchall)

    def fetchmany(self, *args):
        return self._guarded(super().fetchmany, *args)

    def __next__(self):
        return self._guarded(super().__next__)


class _ReadConnection(sqlite3.Connection):
    def __init__(self, database, *args, **kwargs):
        super().__init__(database, *args, **kwargs)
        self.path = str(database).removeprefix("file:").split("?")[0]

    def cursor(self, factory=_ReadCursor):
        return super().cursor(factory)

    def execute(self, *args):
        return self.cursor().execute(*args)


@contextmanager
def _reading(folder: Path) -> Iterator[tuple[Path, Manifest, sqlite3.Connection]]:
    """The live generation, its manifest and a read-only connection; any failure becomes IndexMissing/IndexCorrupt.

    The connection is closed when the block fails; on success it belongs to the caller.
    """
    generation = live_generation(folder)
    if generation is None:
        raise IndexMissing(f"no index in {folder}; run `rag index` to build it")
    db = None
    try:
        manifest = Manifest.read(generation)
        db = sqlite3.connect(f"file:{Path(folder) / manifest.metadata}?mode=ro", uri=True, check_same_thread=False,
                             factory=_ReadConnection)
        yield generation, manifest, db
    except (OSError, ValueError, TypeError, RuntimeError, sqlite3.Error, IndexCorrupt) as exc:
        if db is not None:
            db.close()
        if isinstance(exc, IndexCorrupt):
            raise
        raise IndexCorrupt(f"index in {folder} is unreadable ({exc}); run `rag index --rebuild`") from exc


def live_generation(folder: Path) -> Path | None:
    """The generation ``CURRENT`` names; None when there is no index (or no such generation).

    A ``CURRENT`` that cannot be read or holds no folder name is :class:`IndexCorrupt`, not a
    traceback: random bytes in it used to fail every command with a ``UnicodeDecodeError``.
    """
    pointer = Path(folder) / CURRENT
    if not pointer.is_file():
        return None
    try:
        name = pointer.read_bytes().decode("ascii").strip()
    except OSError as exc:
        raise IndexCorrupt(f"cannot read {pointer} ({exc.strerror or exc}); check its permissions") from exc
    except UnicodeDecodeError:
        raise IndexCorrupt(f"{pointer} is garbled; run `rag index --rebuild`") from None
    if name and ("/" in name or not name.startswith("gen-")):
        raise IndexCorrupt(f"{pointer} names no generation ({name[:40]!r}); run `rag index --rebuild`")
    generation = Path(folder) / name
    return generation if name and generation.is_dir() else None


class IndexReadOnly(StoreError):
    """The index folder cannot be written (a read-only deployment, or wrong permissions)."""


# Writer locks held by this process: folder -> [thread lock, depth, open lock file].
_writer_locks: dict[str, list] = {}  # key -> [thread lock, depth, what holds the process-wide lock]
_writer_locks_guard = threading.Lock()


@contextmanager
def reentrant_writer_lock(key: str, acquire, release) -> Iterator[None]:
    """A lock exclusive across processes (``acquire()`` takes it and returns its holder, ``release(holder)``
    gives it back) and threads, re-entrant in the thread holding it: an update locks once for its plan
    and again for its writes.  Shared by the index backends."""
    with _writer_locks_guard:
        entry = _writer_locks.setdefault(key, [threading.RLock(), 0, None])
    with entry[0]:
        if entry[1] == 0:
            entry[2] = acquire()
        entry[1] += 1
        try:
            yield
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                release(entry[2])
                entry[2] = None


def writer_lock(folder: Path):
    """The one-writer lock of an index folder (``flock`` on ``.lock``), see :func:`reentrant_writer_lock`.

    An update must plan (read the live fingerprints) and write under the same lock: two ``rag index``
    runs that planned from the same generation before locking both added the new articles, and the
    index kept them twice for good.
    """
    folder = Path(folder)

    def acquire():
        try:
            folder.mkdir(parents=True, exist_ok=True)
            handle = open(folder / ".lock", "w")
        except OSError as exc:  # read-only file system, permissions
            raise IndexReadOnly(f"index folder {folder} is not writable ({exc.strerror or exc}); "
                                "fix its permissions, or point --index / RAG_INDEX elsewhere") from exc
        fcntl.flock(handle, fcntl.LOCK_EX)
        return handle

    def release(handle) -> None:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()

    return reentrant_writer_lock(str(folder.resolve()), acquire, release)


# --------------------------------------------------------------------- writing


class IndexWriter:
    """Builds the next generation from the live one (or from nothing) and publishes it atomically.

    Use as a context manager: leaving the block without :meth:`commit` (an
    exception, Ctrl-C) rolls the rows back, deletes the unfinished generation
    and changes nothing.
    """

    def __init__(self, folder: Path, manifest: Manifest, *, ivf_threshold: int, start_empty: bool = False):
        """The new generation's folder (:attr:`generation`) also takes the files derived from its rows (the
        lexical index with its term counts, the language sums: see rag.stores.embedded), so that readers load
        instead of recomputing them."""
        self.folder = Path(folder)
        self.manifest = manifest
        self.start_empty = start_empty
        self.ivf_threshold = ivf_threshold
        self.committed = False
        self.generation: Path | None = None
        self.db: sqlite3.Connection | None = None

    def __enter__(self) -> IndexWriter:
        self._exit_stack = ExitStack()
        self._exit_stack.enter_context(writer_lock(self.folder))
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self) -> None:
        live = None if self.start_empty else live_generation(self.folder)
        self.previous = None if live is None else (live, Manifest.read(live))
        number = self.previous[1].generation + 1 if self.previous else 1
        self.generation = self.folder / f"gen-{number:06d}-{os.getpid()}-{time.monotonic_ns()}"
        self.generation.mkdir()
        metadata = self.previous[1].metadata if self.previous else f"meta-{self.generation.name}.sqlite"
        self.manifest = replace(self.manifest, generation=number, metadata=metadata)
        self.db = sqlite3.connect(self.folder / metadata)
        self.db.executescript(SCHEMA)
        if self.previous:
            self._forget_unpublished_and_old(self.previous[1])

    def _forget_unpublished_and_old(self, live: Manifest) -> None:
        """Undo rows of generations after the live one (never published: a crash), and drop rows no reader needs.

        A removed row is kept while the live generation or the one before it
        can see it (a reader may still have that one open), and while the live
        ``vectors.faiss`` holds its vector.
        """
        params = {"g": live.generation, "old": min(live.base_generation, live.generation - 1)}
        for table in ARTICLE_VOCABULARY:  # before the article rows they belong to
            self.db.execute(f"DELETE FROM {table} WHERE (doc_id, added) IN (SELECT doc_id, added FROM articles "
                            "WHERE added > :g OR removed <= :old)", params)
        for table in ("chunks", "articles"):
            self.db.execute(f"DELETE FROM {table} WHERE added > :g", params)
            self.db.execute(f"UPDATE {table} SET removed = NULL WHERE removed > :g", params)
            self.db.execute(f"DELETE FROM {table} WHERE removed <= :old", params)
        for table in ("chunk_names", "chunk_tokens"):
            self.db.execute(f"DELETE FROM {table} WHERE chunk_id NOT IN (SELECT id FROM chunks)")

    def remove_articles(self, doc_ids: Iterable[str]) -> int:
        """Mark these articles and their chunks removed as of the new generation; return the chunks removed."""
        marked = 0
        for doc_id in doc_ids:
            params = {"doc_id": doc_id, "g": self.manifest.generation}
            marked += self.db.execute(
                "UPDATE chunks SET removed = :g WHERE doc_id = :doc_id AND removed IS NULL", params
            ).rowcount
            self.db.execute("UPDATE articles SET removed = :g WHERE doc_id = :doc_id AND removed IS NULL", params)
        return marked

    def add_article(
        self, article: Article, chunks: list[Chunk], vectors: np.ndarray, sentences: list[SentenceVectors],
        derived: list[tuple[frozenset[str], list[str]]], vocabulary: ArticleVocabulary,
    ) -> None:
        """Add an article with its chunks, one vector per chunk, each chunk's sentence vectors, names and tokens,
        and the article's vocabulary."""
        g = self.manifest.generation
        self.db.execute(
            "INSERT INTO articles (doc_id, title, text, lang, url, date, location, fingerprint, source, day, added) "
            "VALUES (:doc_id, :title, :text, :lang, :url, :date, :location, :fingerprint, :source, :day, :added)",
            {**asdict(article), "day": _day(article.date), "added": g},
        )
        self._write_vocabulary(article.doc_id, g, vocabulary)
        vectors = np.asarray(vectors, dtype=np.float32)
        # each row's id as it is inserted: looking them up by (doc_id, added) afterwards made SQLite scan every
        # chunk of the generation (it picks the generations index), so filling an index grew with its square
        row_ids = [self.db.execute(
            "INSERT INTO chunks (doc_id, position, start, end, n_tokens, text, vector, sentence_spans, "
            "sentence_vectors, added) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (c.doc_id, c.position, c.start, c.end, c.n_tokens, c.text, v.tobytes(), json.dumps(s.spans),
             s.to_bytes(), g)).lastrowid
            for c, v, s in zip(chunks, vectors, sentences, strict=True)]
        self._write_derived_text((row_id, *d) for row_id, d in zip(row_ids, derived, strict=True))

    def _write_derived_text(self, rows: Iterable[tuple[int, frozenset[str], list[str]]]) -> None:
        for row_id, keys, tokens in rows:
            self.db.executemany("INSERT INTO chunk_names (chunk_id, key) VALUES (?, ?)",
                                [(row_id, key) for key in sorted(keys)])
            self.db.execute("INSERT INTO chunk_tokens (chunk_id, tokens) VALUES (?, ?)", (row_id, " ".join(tokens)))

    def _write_vocabulary(self, doc_id: str, added: int, vocabulary: ArticleVocabulary) -> None:
        self.db.executemany("INSERT INTO article_words (word, doc_id, added, in_text, in_name) VALUES (?, ?, ?, ?, ?)",
                            vocabulary_rows(doc_id, added, vocabulary))
        self.db.execute("INSERT INTO article_tokens (doc_id, added, tokens) VALUES (?, ?, ?)",
                        (doc_id, added, " ".join(vocabulary.tokens)))

    def articles(self) -> list[Article]:
        rows = self.db.execute(f"SELECT {ARTICLE_COLUMNS} FROM articles a WHERE {visible('a')} ORDER BY a.doc_id",
                               {"g": self.manifest.generation})
        return [Article(*row) for row in rows]

    def passages(self) -> list[Passage]:
        """Every passage of the new generation, by row id: what its derived files are computed from."""
        rows = self.db.execute(f"SELECT {PASSAGE_COLUMNS} FROM {PASSAGE_JOIN} WHERE {visible('c')} ORDER BY c.id",
                               {"g": self.manifest.generation})
        return [Passage(*row) for row in rows]

    def vectors(self) -> np.ndarray:
        """The vectors of :meth:`passages`, in the same order."""
        return self._all_vectors(self.manifest.generation)[1]

    def changed(self, change: str) -> tuple[list[Passage], np.ndarray]:
        """The passages this generation has ``"added"`` or ``"removed"``, and their vectors: what the statistics
        kept with a generation are updated by."""
        rows = self.db.execute(f"SELECT {PASSAGE_COLUMNS}, c.vector FROM {PASSAGE_JOIN} WHERE c.{change} = :g "
                               "ORDER BY c.id", {"g": self.manifest.generation}).fetchall()
        return [Passage(*row[:-1]) for row in rows], _as_vectors([row[-1] for row in rows], self.manifest.dim)

    def replace_derived_text(self, rows: Iterable[tuple[int, frozenset[str], list[str]]],
                             vocabularies: Iterable[tuple[str, ArticleVocabulary]]) -> None:
        """Replace the name keys and lexical tokens of every chunk with these (row id, keys, tokens), and every
        article's vocabulary with these (doc id, vocabulary).

        The rows are shared with the live generation, whose readers see the new
        names once this commits: names only steer ranking, so that is harmless
        (its saved lexical index keeps the old tokens).
        """
        rows, vocabularies = list(rows), list(vocabularies)  # computed from the rows before they are deleted
        for table in ("chunk_names", "chunk_tokens", *ARTICLE_VOCABULARY):
            self.db.execute(f"DELETE FROM {table}")
        self._write_derived_text(rows)
        g = self.manifest.generation
        added = dict(self.db.execute(f"SELECT doc_id, added FROM articles a WHERE {visible('a')}", {"g": g}))
        for doc_id, vocabulary in vocabularies:
            self._write_vocabulary(doc_id, added[doc_id], vocabulary)

    def lexical_tokens(self, change: str | None = None) -> list[list[str]]:
        """The stored lexical tokens of :meth:`passages`, or of those :meth:`changed` by ``change``, in the same
        order."""
        where = visible("c") if change is None else f"c.{change} = :g"
        rows = self.db.execute(f"SELECT t.tokens FROM chunks c LEFT JOIN chunk_tokens t ON t.chunk_id = c.id "
                               f"WHERE {where} ORDER BY c.id", {"g": self.manifest.generation})
        return [(tokens or "").split() for (tokens,) in rows]

    def commit(self) -> Manifest:
        """Write everything, fsync it, then switch ``CURRENT`` to the new generation."""
        params = {"g": self.manifest.generation}
        articles = self.db.execute(f"SELECT COUNT(*) FROM articles a WHERE {visible('a')}", params).fetchone()[0]
        chunks = self.db.execute(f"SELECT COUNT(*) FROM chunks c WHERE {visible('c')}", params).fetchone()[0]
        manifest = replace(self.manifest, built_at=time.time(), articles=articles, chunks=chunks)
        manifest = self._write_vectors(manifest)
        self.db.commit()  # durable, but invisible until CURRENT names this generation
        self.db.close()
        (self.generation / MANIFEST).write_text(json.dumps(asdict(manifest), indent=2))
        for path in sorted(self.generation.rglob("*"), reverse=True):  # files, then their folders
            _fsync(path)
        _fsync(self.generation)
        pointer = self.folder / f"{CURRENT}.tmp"
        pointer.write_text(self.generation.name)
        _fsync(pointer)
        if (self.folder / CURRENT).is_dir():  # a folder in its place (it cannot be replaced by a file): not an index
            shutil.rmtree(self.folder / CURRENT)
        os.replace(pointer, self.folder / CURRENT)
        _fsync(self.folder)
        self.committed = True
        self.manifest = manifest
        return manifest

    def _write_vectors(self, manifest: Manifest) -> Manifest:
        """Link the previous vectors.faiss when little changed; otherwise write a fresh one (a compaction)."""
        previous = self.previous[1] if self.previous else None
        layout = choose_layout(manifest.chunks, self.ivf_threshold, previous.layout if previous else None)
        if previous is not None and layout == previous.layout:
            delta = self._delta_size(previous, manifest.generation)
            if delta <= DELTA_FRACTION * previous.base_chunks:
                os.link(self.previous[0] / VECTORS, self.generation / VECTORS)
                return replace(manifest, layout=layout, base_generation=previous.base_generation,
                               base_chunks=previous.base_chunks, vectors_crc=previous.vectors_crc)
            # same index type: apply the delta to the previous file, no retraining
            index = _open_vectors(self.db, self.previous[0], replace(previous, generation=manifest.generation))
        else:
            ids, vectors = self._all_vectors(manifest.generation)
            index = build_index(layout, manifest.dim, vectors, ids)
        faiss.write_index(index, str(self.generation / VECTORS))
        return replace(manifest, layout=layout, base_generation=manifest.generation, base_chunks=index.ntotal,
                       vectors_crc=file_crc(self.generation / VECTORS))

    def _delta_size(self, previous: Manifest, g: int) -> int:
        """Rows the new generation differs by from the previous vectors.faiss: added since, plus removed from it."""
        params = {"b": previous.base_generation, "g": g}
        added = self.db.execute(f"SELECT COUNT(*) FROM chunks c WHERE c.added > :b AND {visible('c')}", params)
        removed = self.db.execute(
            "SELECT COUNT(*) FROM chunks WHERE added <= :b AND removed IS NOT NULL AND removed <= :g", params
        )
        return added.fetchone()[0] + removed.fetchone()[0]

    def _all_vectors(self, g: int) -> tuple[np.ndarray, np.ndarray]:
        rows = self.db.execute(f"SELECT c.id, c.vector FROM chunks c WHERE {visible('c')} ORDER BY c.id", {"g": g})
        ids, blobs = [], []
        for row_id, blob in rows:
            ids.append(row_id)
            blobs.append(blob)
        return np.array(ids, dtype=np.int64), _as_vectors(blobs, self.manifest.dim)

    def __exit__(self, *exc_info) -> None:
        try:
            if self.db is not None:
                self.db.close()  # uncommitted rows are rolled back
            if not self.committed and self.generation is not None:
                shutil.rmtree(self.generation, ignore_errors=True)
            _remove_stale(self.folder)
        finally:
            self._exit_stack.close()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_stale(folder: Path) -> None:
    """Delete every generation but the live one, and SQLite files it does not use (earlier runs or crashes)."""
    try:
        live = live_generation(folder)
    except IndexCorrupt:
        return  # which generation is in use is unknown: keep everything
    for candidate in folder.glob("gen-*"):
        if candidate != live and candidate.is_dir():
            shutil.rmtree(candidate, ignore_errors=True)
    try:
        keep = Manifest.read(live).metadata
    except (TypeError, OSError, ValueError):
        return  # no readable live generation: which database is in use is unknown, so keep them all
    for candidate in folder.glob("meta-*.sqlite*"):
        if candidate.is_dir() and not candidate.is_symlink():  # a folder where a database was: not one
            shutil.rmtree(candidate, ignore_errors=True)
        elif not candidate.name.startswith(keep):
            candidate.unlink(missing_ok=True)
