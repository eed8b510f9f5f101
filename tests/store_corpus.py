"""Synthetic articles for the store conformance suite, and a writer process it can kill or race.

Run as ``python -m tests.store_corpus LOCATION add DOC_ID [--hang]``: adds one
article through the backend of ``LOCATION`` (a folder or a ``postgresql://``
URL) and commits it; with ``--hang`` it prints ``ready`` after writing the rows
and waits to be killed before committing; with ``--pause`` it waits 1.5 s instead, then commits.
"""

from __future__ import annotations

import sys
import time
import zlib
from dataclasses import dataclass

import numpy as np

from rag.chunking import Chunk
from rag.corpus import Article
from rag.indexing import derived_text
from rag.names import article_vocabulary
from rag.store import Manifest, SentenceVectors
from rag.stores import backend_for

DIM = 16
MANIFEST = Manifest(model="synthetic", model_fingerprint="synthetic-1", dim=DIM, chunk_tokens=220, chunk_overlap=40,
                    encoding="o200k_base", parser_version="1")
IVF_THRESHOLD = 50_000


@dataclass(frozen=True)
class Synthetic:
    """One article with its chunks and their (random, unit) vectors."""

    article: Article
    chunks: list[Chunk]
    vectors: np.ndarray

    def sentences(self) -> list[SentenceVectors]:
        """Each chunk's two sentences: the chunk's vector and its opposite; read alone, the other way round."""
        return [SentenceVectors(list(c.sentences), np.vstack([v, -v]), np.vstack([-v, v]))
                for c, v in zip(self.chunks, self.vectors)]

    def add_to(self, writer) -> None:
        writer.add_article(self.article, self.chunks, self.vectors, self.sentences(),
                           [derived_text(self.article.title, c.text) for c in self.chunks],
                           article_vocabulary(self.article.title, self.article.text))


def synthetic(doc_id: str, *, lang: str = "en", date: str | None = "2025-01-01", source: str | None = "example.com",
              chunks: int = 2, words: str = "", version: int = 0) -> Synthetic:
    """An article whose every chunk holds the word ``W<doc_id>`` (and ``words``), so lexical search can find it."""
    seed = zlib.crc32(f"{doc_id}/{version}".encode())
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((chunks, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    marker = "W" + doc_id.replace("-", "")
    texts = [f"{marker} {words} part {i} version {version}. Second sentence of {marker}." for i in range(chunks)]
    chunk_list = []
    for i, text in enumerate(texts):
        first = text.index(". ") + 1
        chunk_list.append(Chunk(doc_id, i, text, 0, len(text), 12, doc_id, sentences=((0, first), (first + 1, len(text)))))
    article = Article(doc_id, f"Title of {doc_id}", "\n\n".join(texts), lang, f"https://{source or 'x.org'}/{doc_id}",
                      date, f"{doc_id}.jsonl", f"fp-{doc_id}-{version}", source)
    return Synthetic(article, chunk_list, vectors)


def with_text(doc_id: str, text: str, *, lang: str = "en", title: str = "", version: int = 0) -> Synthetic:
    """An article of one chunk holding ``text`` as written (for the name vocabulary), with a random vector."""
    vector = np.random.default_rng(zlib.crc32(f"{doc_id}/{version}".encode())).standard_normal((1, DIM))
    chunk = Chunk(doc_id, 0, text, 0, len(text), 12, doc_id, sentences=((0, len(text)),))
    article = Article(doc_id, title, text, lang, None, None, f"{doc_id}.jsonl", f"fp-{doc_id}-{version}", None)
    return Synthetic(article, [chunk], (vector / np.linalg.norm(vector)).astype(np.float32))


def write(location, add=(), remove=(), *, start_empty: bool = False) -> Manifest:
    """Publish one update through the backend of ``location``."""
    with backend_for(location).writer(MANIFEST, start_empty=start_empty, ivf_threshold=IVF_THRESHOLD) as writer:
        writer.remove_articles(remove)
        for item in add:
            item.add_to(writer)
        return writer.commit()


def main(argv: list[str]) -> None:
    location, action, doc_id, *flags = argv
    assert action == "add"
    with backend_for(location).writer(MANIFEST, start_empty=False, ivf_threshold=IVF_THRESHOLD) as writer:
        synthetic(doc_id).add_to(writer)
        if "--hang" in flags:
            print("ready", flush=True)
            time.sleep(600)
        if "--pause" in flags:  # hold the writer a moment, so that another one starts meanwhile
            print("ready", flush=True)
            time.sleep(1.5)
        writer.commit()
    print("committed", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
