"""Finding the passages that answer a question."""

from __future__ import annotations

from dataclasses import dataclass

from .embeddings import Embedder
from .store import IndexStore, Passage


@dataclass(frozen=True)
class Hit:
    """A retrieved passage with its rank (1-based) and similarity score."""

    rank: int
    score: float
    passage: Passage

    def to_dict(self) -> dict:
        p = self.passage
        return {
            "rank": self.rank,
            "score": round(self.score, 4),
            "doc_id": p.doc_id,
            "chunk_id": p.chunk_id,
            "title": p.title,
            "url": p.url,
            "lang": p.lang,
            "text": p.text,
        }


class Retriever:
    """Dense search over the FAISS index."""

    def __init__(self, store: IndexStore, embedder: Embedder):
        self.store = store
        self.embedder = embedder

    def search(self, question: str, k: int = 5) -> list[Hit]:
        query = self.embedder.embed_query(question)
        scored = self.store.search(query, k)
        passages = self.store.passages(row_id for row_id, _ in scored)
        return [Hit(rank, score, passages[row_id]) for rank, (row_id, score) in enumerate(scored, start=1)]
