"""Finding the passages that answer a question.

Dense search (multilingual embeddings) does the heavy lifting because
questions and articles are usually in different languages.  Its candidates
are then corrected for the pull of each passage language on every question
and for the extra pull of the question's own language (:class:`LanguageCentroids`)
and the first few re-ranked by their best single
sentence (whose vectors the index stores).  Lexical BM25 over accent-folded,
alias-normalised tokens adds exact matches on names and numbers (``Shin Sang
Jin``, ``615``), which embeddings blur.  The two rankings are merged by
weighted reciprocal-rank fusion.  Every step's weight is a setting; the
defaults follow the measurements in bench/results-retrieval.md.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from weakref import WeakKeyDictionary

import bm25s
import numpy as np

from .config import Settings
from .embeddings import Embedder
from .language import detect_language, lexical_tokens, name_tokens
from .store import IndexStore, Passage
from .threads import faiss_threads

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
    language_calibration: float  # 0 disables the correction of each passage language's pull
    same_language_calibration: float  # 0 disables the correction of the question's own language's pull
    sentence_weight: float  # 0 disables re-ranking by the best sentence
    rerank_candidates: int  # how many of the first dense candidates are re-ranked by sentence
    threads: int  # FAISS threads for one question's search (see rag.threads)

    @classmethod
    def from_settings(cls, settings: Settings) -> RetrievalOptions:
        return cls(settings.lexical_weight, settings.candidates, settings.language_calibration,
                   settings.same_language_calibration, settings.sentence_weight, settings.rerank_candidates,
                   settings.query_threads)


class LanguageCentroids:
    """How much each passage language pulls every question, whatever it asks.

    Multilingual embeddings keep a language component: an English question
    sits closer to Indonesian than to Vietnamese text before meaning counts,
    so on the external benchmark a third of the top-5 slots of English
    questions about Vietnamese passages went to unrelated Indonesian ones.
    The pull of language L on a question q is q·(mean of L's passage vectors -
    mean of all), which :meth:`offsets` returns per passage so it can be
    subtracted.  A language with few articles has a centroid that is mostly
    their topic, not their language, so it is shrunk towards the global mean
    (weight n / (n + ``PRIOR_ARTICLES``)): in a corpus of five articles the
    correction all but vanishes instead of penalising the one article that
    answers.

    That leaves the same-language preference uncorrected in small corpora: a
    Vietnamese question about an Indonesian article got the one Vietnamese
    article first.  :meth:`own_language_pull` measures it per question as
    q·(mean of its language's passages - mean of the others), unshrunk: the
    gap is about the same (0.03-0.04) in the five seed articles and the 513
    external passages, and a passage in another language cannot gain from it.
    """

    PRIOR_ARTICLES = 20

    def __init__(self, passages: list[Passage], vectors: np.ndarray):
        langs = np.array([p.lang for p in passages])
        overall = vectors.mean(axis=0) if len(vectors) else np.zeros(vectors.shape[1], dtype=np.float32)
        self.shifts: dict[str, np.ndarray] = {}
        self.own: dict[str, np.ndarray] = {}
        for lang in set(langs.tolist()):
            mine = langs == lang
            if (~mine).any():
                self.own[lang] = vectors[mine].mean(axis=0) - vectors[~mine].mean(axis=0)
            articles = len({p.doc_id for p, m in zip(passages, mine) if m})
            weight = articles / (articles + self.PRIOR_ARTICLES)
            self.shifts[lang] = weight * (vectors[mine].mean(axis=0) - overall)

    @classmethod
    def of_store(cls, store: IndexStore) -> LanguageCentroids:
        passages = store.all_passages()
        row_ids = np.array([p.row_id for p in passages], dtype=np.int64)
        vectors = store.vectors.reconstruct_batch(row_ids) if len(row_ids) else np.zeros((0, store.vectors.d))
        return cls(passages, np.asarray(vectors, dtype=np.float32))

    def offsets(self, query: np.ndarray, langs: list[str]) -> np.ndarray:
        pulls = {lang: float(shift @ query) for lang, shift in self.shifts.items()}
        return np.array([pulls.get(lang, 0.0) for lang in langs], dtype=np.float32)

    def own_language_pull(self, query: np.ndarray, lang: str) -> float:
        """How much closer ``query`` (in ``lang``) sits to passages in ``lang`` than to the rest.

        0 without passages in both, and never negative: the correction only
        ever lowers passages of the question's language.
        """
        gap = self.own.get(lang)
        return max(0.0, float(gap @ query)) if gap is not None else 0.0


_centroids: WeakKeyDictionary[IndexStore, LanguageCentroids] = WeakKeyDictionary()
_centroids_lock = threading.Lock()


def centroids_of(store: IndexStore) -> LanguageCentroids:
    """The language centroids of one index generation, computed on first use and dropped with it."""
    with _centroids_lock:
        if store not in _centroids:
            _centroids[store] = LanguageCentroids.of_store(store)
        return _centroids[store]


class Retriever:
    """Dense search, corrected for the pull of each passage language, re-ranked by best sentence, fused with BM25."""

    def __init__(self, store: IndexStore, embedder: Embedder, lexical: LexicalIndex | None,
                 options: RetrievalOptions):
        self.store = store
        self.embedder = embedder
        self.lexical = lexical
        self.options = options

    def search(self, question: str, k: int = 5) -> list[Hit]:
        return self.search_embedded(question, self.embedder.embed_query(question), k)

    def search_embedded(self, question: str, query: np.ndarray, k: int = 5) -> list[Hit]:
        """:meth:`search` with the question's vector already made (answers reuse it to pick sentences)."""
        with faiss_threads(self.options.threads):
            dense = self.store.search(query, max(k, self.options.candidates))
        cosine = dict(dense)
        passages = self.store.passages(cosine)
        ranked = self._rerank(query, dense, passages, detect_language(question))
        if self.lexical is not None and self.options.lexical_weight > 0:
            lexical = self.lexical.search(question, self.options.candidates)
            ranked = fuse([[(row_id, 0.0) for row_id in ranked], lexical], [1.0, self.options.lexical_weight])
        ranked = ranked[:k]
        missing = [row_id for row_id in ranked if row_id not in cosine]
        if missing:  # lexical-only hits: score them on the dense scale too, for display and floors
            cosine.update(self._cosines(query, missing))
            passages.update(self.store.passages(missing))
        return [Hit(rank, cosine[row_id], passages[row_id]) for rank, row_id in enumerate(ranked, start=1)]

    def _rerank(self, query: np.ndarray, dense: list[tuple[int, float]], passages: dict[int, Passage],
                question_lang: str) -> list[int]:
        """Order the dense candidates by language-corrected similarity, then the first few by their best sentence.

        Score = cos(q, chunk) + w * max cos(q, sentence), each minus the pull of
        the passage's language (``language_calibration`` times its centroid offset)
        and, for passages in the question's language, ``same_language_calibration``
        times that language's own pull.
        """
        options = self.options
        row_ids = [row_id for row_id, _ in dense]
        if not row_ids or (options.language_calibration == 0 and options.sentence_weight == 0
                           and options.same_language_calibration == 0):
            return row_ids
        langs = [passages[row_id].lang for row_id in row_ids]
        centroids = centroids_of(self.store)
        offsets = options.language_calibration * centroids.offsets(query, langs)
        if options.same_language_calibration > 0:
            own = options.same_language_calibration * centroids.own_language_pull(query, question_lang)
            offsets = offsets + own * (np.array(langs) == question_lang)
        scores = np.array([score for _, score in dense], dtype=np.float32) - offsets
        order = np.argsort(-scores, kind="stable")
        if options.sentence_weight > 0 and options.rerank_candidates > 0:
            head = order[: options.rerank_candidates]
            sentences = self.store.sentence_vectors(row_ids[i] for i in head)
            best = np.array([sentences[row_ids[i]].closest(query)[1] for i in head], dtype=np.float32)
            head_scores = scores[head] + options.sentence_weight * (best - offsets[head])
            order = np.concatenate([head[np.argsort(-head_scores, kind="stable")], order[len(head):]])
        return [row_ids[i] for i in order]

    def _cosines(self, query: np.ndarray, row_ids: list[int]) -> dict[int, float]:
        vectors = self.store.vectors.reconstruct_batch(np.array(row_ids, dtype=np.int64))
        return dict(zip(row_ids, (vectors @ query).tolist()))


def fuse(rankings: list[list[tuple[int, float]]], weights: list[float]) -> list[int]:
    """Weighted reciprocal-rank fusion: robust to the very different score scales of BM25 and cosine."""
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights):
        for rank, (row_id, _) in enumerate(ranking, start=1):
            fused[row_id] = fused.get(row_id, 0.0) + weight / (RRF_K + rank)
    return sorted(fused, key=fused.get, reverse=True)
