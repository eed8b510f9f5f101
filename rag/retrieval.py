"""Finding the passages that answer a question.

Dense search (multilingual embeddings) does the heavy lifting because
questions and articles are usually in different languages.  Lexical BM25 over
accent-folded, alias-normalised tokens adds exact matches on names and
numbers (``Shin Sang Jin``, ``615``), which embeddings blur.  The two rankings
are merged by weighted reciprocal-rank fusion; the weights are settings, and
their defaults follow the measurements in bench/README.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import bm25s
import numpy as np

from .embeddings import Embedder
from .language import detect_language, lexical_tokens, name_tokens
from .store import IndexStore, Passage

RRF_K = 60  # the usual reciprocal-rank-fusion constant


@dataclass(frozen=True)
class Hit:
    """A retrieved passage with its rank (1-based) and score (cosine similarity of the dense match)."""

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


class LexicalIndex:
    """BM25 over every chunk of one index generation (built in memory on first use).

    Across languages only names and numbers can match ("Daejeon", "615"); the
    other words of an English question are noise against a Vietnamese passage.
    So passages in the question's language are scored with all its words,
    passages in other languages with its names and numbers only.
    """

    def __init__(self, passages: list[Passage]):
        self.row_ids = np.array([p.row_id for p in passages], dtype=np.int64)
        self.langs = np.array([p.lang for p in passages])
        self.bm25 = bm25s.BM25()
        tokens = [lexical_tokens(f"{p.title}\n{p.text}") or [""] for p in passages]
        self.bm25.index(tokens, show_progress=False)

    def unknown_share(self, tokens: set[str]) -> float:
        """Share of ``tokens`` that occur nowhere in the corpus."""
        if not tokens:
            return 0.0
        return sum(token not in self.bm25.vocab_dict for token in tokens) / len(tokens)

    def _scores(self, tokens) -> np.ndarray:
        known = [t for t in tokens if t in self.bm25.vocab_dict]
        return self.bm25.get_scores(known) if known else np.zeros(len(self.row_ids), dtype=np.float32)

    def search(self, question: str, k: int) -> list[tuple[int, float]]:
        if not len(self.row_ids):
            return []
        same_language = self.langs == detect_language(question)
        scores = np.where(same_language, self._scores(lexical_tokens(question)), self._scores(name_tokens(question)))
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [(int(self.row_ids[i]), float(scores[i])) for i in top if scores[i] > 0]


@dataclass(frozen=True)
class RetrievalOptions:
    lexical_weight: float  # 0 disables BM25
    candidates: int  # taken from each ranking before fusion


class Retriever:
    def __init__(self, store: IndexStore, embedder: Embedder, lexical: LexicalIndex | None,
                 options: RetrievalOptions):
        self.store = store
        self.embedder = embedder
        self.lexical = lexical
        self.options = options

    def search(self, question: str, k: int = 5) -> list[Hit]:
        query = self.embedder.embed_query(question)
        dense = self.store.search(query, max(k, self.options.candidates))
        cosine = dict(dense)
        if self.lexical is not None and self.options.lexical_weight > 0:
            lexical = self.lexical.search(question, self.options.candidates)
            ranked = fuse([dense, lexical], [1.0, self.options.lexical_weight])
        else:
            ranked = [row_id for row_id, _ in dense]
        ranked = ranked[:k]
        missing = [row_id for row_id in ranked if row_id not in cosine]
        if missing:  # lexical-only hits: score them on the dense scale too, for display and floors
            cosine.update(self._cosines(query, missing))
        passages = self.store.passages(ranked)
        return [Hit(rank, cosine[row_id], passages[row_id]) for rank, row_id in enumerate(ranked, start=1)]

    def _cosines(self, query: np.ndarray, row_ids: list[int]) -> dict[int, float]:
        vectors = np.vstack([self.store.vectors.reconstruct(row_id) for row_id in row_ids])
        return dict(zip(row_ids, (vectors @ query).tolist()))


def fuse(rankings: list[list[tuple[int, float]]], weights: list[float]) -> list[int]:
    """Weighted reciprocal-rank fusion: robust to the very different score scales of BM25 and cosine."""
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights):
        for rank, (row_id, _) in enumerate(ranking, start=1):
            fused[row_id] = fused.get(row_id, 0.0) + weight / (RRF_K + rank)
    return sorted(fused, key=fused.get, reverse=True)
