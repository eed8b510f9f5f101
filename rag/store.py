"""The index on disk: FAISS vectors plus SQLite metadata, written atomically.

Layout of an index folder::

    index/
      CURRENT            name of the live generation (replaced atomically)
      gen-<time>-<pid>/  one complete, immutable index
        manifest.json    model, dimension, chunking parameters, counts
        vectors.faiss    inner-product index over L2-normalised vectors
        meta.sqlite      articles and chunks; chunk row ids are the FAISS ids
      .lock              held by the one writer at a time

A writer copies the live generation into a new folder, changes the copy, and
only then points ``CURRENT`` at it.  A crash or Ctrl-C at any moment leaves
``CURRENT`` pointing at the previous complete generation.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np

from .chunking import Chunk
from .corpus import Article

CURRENT = "CURRENT"
MANIFEST = "manifest.json"
VECTORS = "vectors.faiss"
METADATA = "meta.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS articles (
    doc_id TEXT PRIMARY KEY, title TEXT NOT NULL, text TEXT NOT NULL, lang TEXT NOT NULL,
    url TEXT, date TEXT, location TEXT NOT NULL, fingerprint TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY, doc_id TEXT NOT NULL REFERENCES articles(doc_id) ON DELETE CASCADE,
    position INTEGER NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL,
    n_tokens INTEGER NOT NULL, text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
"""


class StoreError(Exception):
    """Base for index problems; messages say what to run."""


class IndexMissing(StoreError):
    pass


class IndexCorrupt(StoreError):
    pass


@dataclass(frozen=True)
class Manifest:
    """What the vectors mean.  Any difference in these fields forces a full rebuild."""

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

    def compatible_with(self, other: Manifest) -> bool:
        keys = ("model_fingerprint", "dim", "chunk_tokens", "chunk_overlap", "encoding", "parser_version")
        return all(getattr(self, key) == getattr(other, key) for key in keys)


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

    @property
    def chunk_id(self) -> str:
        return f"{self.doc_id}#{self.position}"


class IndexStore:
    """A read-only view of one generation of the index."""

    def __init__(self, folder: Path, generation: Path, manifest: Manifest, vectors: faiss.Index):
        self.folder = folder
        self.generation = generation
        self.manifest = manifest
        self.vectors = vectors
        self.db = sqlite3.connect(f"file:{generation / METADATA}?mode=ro", uri=True, check_same_thread=False)

    @classmethod
    def open(cls, folder: Path) -> IndexStore:
        folder = Path(folder)
        generation = live_generation(folder)
        if generation is None:
            raise IndexMissing(f"no index in {folder}; run `rag index` to build it")
        try:
            manifest = Manifest(**json.loads((generation / MANIFEST).read_text()))
            vectors = faiss.read_index(str(generation / VECTORS))
            store = cls(folder, generation, manifest, vectors)
            stored = store.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        except (OSError, ValueError, TypeError, RuntimeError, sqlite3.Error) as exc:
            raise IndexCorrupt(
                f"index in {folder} is unreadable ({exc}); run `rag index --rebuild`"
            ) from exc
        if stored != vectors.ntotal:
            raise IndexCorrupt(
                f"index in {folder} is inconsistent ({stored} chunks, {vectors.ntotal} vectors); "
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

    def passages(self, row_ids: Iterable[int]) -> dict[int, Passage]:
        ids = list(row_ids)
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(
            f"SELECT c.id, c.doc_id, c.position, a.title, a.url, a.lang, a.date, c.text, c.start, c.end "
            f"FROM chunks c JOIN articles a USING (doc_id) WHERE c.id IN ({marks})",
            ids,
        )
        return {row[0]: Passage(*row) for row in rows}

    def all_passages(self) -> list[Passage]:
        rows = self.db.execute(
            "SELECT c.id, c.doc_id, c.position, a.title, a.url, a.lang, a.date, c.text, c.start, c.end "
            "FROM chunks c JOIN articles a USING (doc_id) ORDER BY c.id"
        )
        return [Passage(*row) for row in rows]

    def fingerprints(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT doc_id, fingerprint FROM articles"))

    def article(self, doc_id: str) -> Article | None:
        row = self.db.execute(
            "SELECT doc_id, title, text, lang, url, date, location, fingerprint FROM articles WHERE doc_id = ?",
            (doc_id,),
        ).fetchone()
        return Article(*row) if row else None


def live_generation(folder: Path) -> Path | None:
    pointer = Path(folder) / CURRENT
    if not pointer.is_file():
        return None
    name = pointer.read_text().strip()
    generation = Path(folder) / name
    return generation if name and generation.is_dir() else None


class IndexWriter:
    """Builds the next generation from the live one (or from nothing) and publishes it atomically.

    Use as a context manager: leaving the block without :meth:`commit` (an
    exception, Ctrl-C) deletes the unfinished generation and changes nothing.
    """

    def __init__(self, folder: Path, manifest: Manifest, start_empty: bool = False):
        self.folder = Path(folder)
        self.manifest = manifest
        self.start_empty = start_empty
        self.committed = False

    def __enter__(self) -> IndexWriter:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.folder / ".lock", "w")
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        self.generation = self.folder / f"gen-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{time.monotonic_ns()}"
        self.generation.mkdir()
        previous = None if self.start_empty else live_generation(self.folder)
        self.db = sqlite3.connect(self.generation / METADATA)
        if previous is not None:
            with sqlite3.connect(f"file:{previous / METADATA}?mode=ro", uri=True) as source:
                source.backup(self.db)
            self.vectors = faiss.read_index(str(previous / VECTORS))
        else:
            self.vectors = faiss.IndexIDMap2(faiss.IndexFlatIP(self.manifest.dim))
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.executescript(SCHEMA)
        return self

    def remove_articles(self, doc_ids: Iterable[str]) -> int:
        doc_ids = list(doc_ids)
        if not doc_ids:
            return 0
        marks = ",".join("?" * len(doc_ids))
        row_ids = [row[0] for row in self.db.execute(f"SELECT id FROM chunks WHERE doc_id IN ({marks})", doc_ids)]
        self.db.execute(f"DELETE FROM articles WHERE doc_id IN ({marks})", doc_ids)
        if row_ids:
            self.vectors.remove_ids(np.array(row_ids, dtype=np.int64))
        return len(row_ids)

    def add_article(self, article: Article, chunks: list[Chunk], vectors: np.ndarray) -> None:
        record = asdict(article)
        self.db.execute(
            "INSERT INTO articles (doc_id, title, text, lang, url, date, location, fingerprint) "
            "VALUES (:doc_id, :title, :text, :lang, :url, :date, :location, :fingerprint)",
            record,
        )
        row_ids = []
        for chunk in chunks:
            cursor = self.db.execute(
                "INSERT INTO chunks (doc_id, position, start, end, n_tokens, text) VALUES (?, ?, ?, ?, ?, ?)",
                (chunk.doc_id, chunk.position, chunk.start, chunk.end, chunk.n_tokens, chunk.text),
            )
            row_ids.append(cursor.lastrowid)
        if row_ids:
            self.vectors.add_with_ids(np.asarray(vectors, dtype=np.float32), np.array(row_ids, dtype=np.int64))

    def commit(self) -> Manifest:
        """Write everything, fsync it, then switch ``CURRENT`` to the new generation."""
        articles = self.db.execute("SELECT COUNT(*) FROM articles").fetchone()[0]
        chunks = self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        manifest = Manifest(**{**asdict(self.manifest), "built_at": time.time(), "articles": articles, "chunks": chunks})
        self.db.commit()
        self.db.close()
        faiss.write_index(self.vectors, str(self.generation / VECTORS))
        (self.generation / MANIFEST).write_text(json.dumps(asdict(manifest), indent=2))
        for name in (METADATA, VECTORS, MANIFEST):
            _fsync(self.generation / name)
        pointer = self.folder / f"{CURRENT}.tmp"
        pointer.write_text(self.generation.name)
        _fsync(pointer)
        os.replace(pointer, self.folder / CURRENT)
        _fsync(self.folder)
        self.committed = True
        self.manifest = manifest
        return manifest

    def __exit__(self, *exc_info) -> None:
        try:
            if not self.committed:
                self.db.close()
                shutil.rmtree(self.generation, ignore_errors=True)
            _remove_stale_generations(self.folder)
        finally:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_stale_generations(folder: Path) -> None:
    """Delete every generation but the live one (left by earlier runs or crashes)."""
    live = live_generation(folder)
    for candidate in folder.glob("gen-*"):
        if candidate != live and candidate.is_dir():
            shutil.rmtree(candidate, ignore_errors=True)
