"""Finding the passages that answer a question.

Dense search (multilingual embeddings) does the heavy lifting because
questions and articles are usually in different languages.  Its candidates
are then corrected for the pull of each passage language on every question
and for the extra pull of the question's own language (:class:`LanguageCentroids`)
and the first few re-ranked by their best single
sentence (whose vectors the index stores).  Lexical BM25 over accent-folded,
alias-normalised tokens adds exact matches on names and numbers (``Shin Sang
Jin``, ``615``), which embeddings blur.  The two rankings are merged by
weighted reciprocal-rank fusion.  The question's names (rag.names: the one
thing that carries across languages) steer both: the articles naming most of
them join the candidates, and a passage gains with the share of them its
article names (:class:`QuestionNames`).  Finally no article takes more than two
of the results while others are left, and word-for-word copies are folded.
Every step's weight is a setting; the defaults follow the measurements in
bench/results-retrieval.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .bm25 import LANGS, ROW_IDS, TermCounts
from .config import Settings
from .embeddings import Embedder
from .filters import SearchFilters
from .diacritics import restore_vietnamese
from .language import detect_language, lexical_tokens, name_tokens, unaccented_vietnamese
from .names import name_keys
from .store import Passage
from .threads import faiss_threads

if TYPE_CHECKING:  # bm25s imports scipy (0.2 s): only building or opening a lexical index needs it
    import bm25s

    from .stores.base import Store

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
            "source": p.source,
            "date": p.date,
            "text": p.text,
        }


def term_counts(passages: list[Passage], tokens: list[list[str]] | None = None) -> TermCounts:
    """The term counts of ``passages``, tokenised here unless their stored ``tokens`` are given."""
    if tokens is None:
        tokens = [lexical_tokens(f"{p.title}\n{p.text}") for p in passages]
    return TermCounts.of((p.row_id for p in passages), (p.lang for p in passages), tokens)


class LexicalIndex:
    """BM25 over every chunk of one index generation, saved with it at write time.

    Across languages only names and numbers can match ("Daejeon", "615"); the
    other words of an English question are noise against a Vietnamese passage.
    So :meth:`search` gives two rankings, fused with their own weights: every
    passage scored by the question's names and numbers, and the passages in the
    question's language scored by all its words.  One ranking mixing both (as
    before 2026-12-02) stopped working once a corpus held hundreds of articles
    in the question's language: they matched its ordinary words ("hợp tác",
    "tỉnh"), the article in another language that answered matched only its
    names, and Vietnamese questions about the Malay and Indonesian seed articles
    fell from recall@1 0.875 to 0.375 with 300 news articles added.
    """

    def __init__(self, row_ids: np.ndarray, langs: np.ndarray, bm25: bm25s.BM25):
        self.row_ids = row_ids
        self.langs = langs
        self.bm25 = bm25

    @classmethod
    def build(cls, passages: list[Passage], tokens: list[list[str]] | None = None) -> LexicalIndex:
        """Over ``passages``, with their lexical tokens when already computed (the index stores them)."""
        counts = term_counts(passages, tokens)
        return cls(counts.row_ids, counts.langs, counts.bm25())

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        """A folder :meth:`rag.bm25.TermCounts.save` wrote; the scores memory-mapped, not read."""
        import bm25s

        bm25 = bm25s.BM25.load(str(folder), mmap=True, show_progress=False, verbosity=0)
        return cls(np.load(folder / ROW_IDS), np.load(folder / LANGS), bm25)

    def _scores(self, tokens) -> np.ndarray:
        known = [t for t in tokens if t in self.bm25.vocab_dict]
        return self.bm25.get_scores(known) if known else np.zeros(len(self.row_ids), dtype=np.float32)

    def search(self, question: str, k: int, admitted: np.ndarray | None = None
               ) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
        """The best ``k`` passages by the question's names and numbers, and by all its words in its language.

        Only among the rows ``admitted`` (sorted row ids) when given: the statistics stay the corpus's.
        """
        if not len(self.row_ids):
            return [], []
        allowed = np.ones(len(self.row_ids), dtype=bool) if admitted is None else np.isin(self.row_ids, admitted)
        same_language = (self.langs == detect_language(question)) & allowed
        by_names = self._top(np.where(allowed, self._scores(name_tokens(question)), 0.0), k)
        by_words = self._top(np.where(same_language, self._scores(lexical_tokens(question)), 0.0), k)
        return by_names, by_words

    def _top(self, scores: np.ndarray, k: int) -> list[tuple[int, float]]:
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [(int(self.row_ids[i]), float(scores[i])) for i in top if scores[i] > 0]


@dataclass(frozen=True)
class RetrievalOptions:
    lexical_weight: float  # weight of the BM25 ranking by names and numbers; 0 disables BM25
    candidates: int  # taken from each ranking before fusion
    language_calibration: float  # 0 disables the correction of each passage language's pull
    same_language_calibration: float  # 0 disables the correction of the question's own language's pull
    sentence_weight: float  # 0 disables re-ranking by the best sentence
    rerank_candidates: int  # how many of the first dense candidates are re-ranked by sentence
    threads: int  # FAISS threads for one question's search (see rag.threads)
    name_weight: float = 0.0  # 0 disables the bonus for naming the question's names
    name_candidates: int = 0  # articles fetched by name into the candidates
    max_per_article: int = 0  # 0 = no cap on one article's passages in the results
    lexical_words_weight: float = 0.0  # weight of the BM25 ranking by all words, among same-language passages
    language_candidates: int = 0  # dense candidates drawn from each passage language as well; 0 = one pool
    language_margin: float = 0.0  # ... only those within this cosine of the best candidate; 0 = all
    same_language_unnamed_share: float = 1.0  # share of same_language_calibration kept for a question naming nothing known
    sentences_alone: bool = False  # re-ranking reads each sentence alone too (True), or only in its chunk's context

    @classmethod
    def from_settings(cls, settings: Settings) -> RetrievalOptions:
        return cls(settings.lexical_weight, settings.candidates, settings.language_calibration,
                   settings.same_language_calibration, settings.sentence_weight, settings.rerank_candidates,
                   settings.query_threads, settings.name_weight, settings.name_candidates, settings.max_per_article,
                   settings.lexical_words_weight, settings.language_candidates, settings.language_margin,
                   settings.same_language_unnamed_share, settings.rerank_sentences_alone)


LanguageSums = dict[str, tuple[np.ndarray, int, int]]  # per language: (sum of its chunk vectors, chunks, articles)


def language_sums(passages: list[Passage], vectors: np.ndarray) -> LanguageSums:
    """What :class:`LanguageCentroids` follow from, counted over ``passages`` and their ``vectors``.

    The sums are float64 so that a store adding and subtracting chunks' vectors
    update after update (:func:`add_to_sums`) stays at what a clean count gives.
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    langs = np.array([p.lang for p in passages])
    sums: LanguageSums = {}
    for lang in sorted(set(langs.tolist())):
        mine = langs == lang
        sums[lang] = (vectors[mine].sum(axis=0), int(mine.sum()), len({p.doc_id for p in passages if p.lang == lang}))
    return sums


def add_to_sums(sums: LanguageSums, lang: str, vector_sum, chunks: int, articles: int) -> None:
    """Count chunks and articles into ``lang``'s sums (or out of them, with negative counts and sums), in place."""
    total, n, a = sums.get(lang, (0.0, 0, 0))
    sums[lang] = (total + vector_sum, n + chunks, a + articles)


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
        self.shifts, self.own = self._pulls(language_sums(passages, vectors))

    @classmethod
    def from_sums(cls, sums: LanguageSums) -> LanguageCentroids:
        """From the per-language sums a store keeps up to date as articles come and go (rag.stores), so that the
        centroids cost no read of a vector."""
        centroids = cls.__new__(cls)
        centroids.shifts, centroids.own = cls._pulls(sums)
        return centroids

    @classmethod
    def _pulls(cls, sums: LanguageSums) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        sums = {lang: s for lang, s in sums.items() if s[1] > 0}  # a language whose last chunk was removed
        total = sum(s for s, _, _ in sums.values())
        chunks = sum(n for _, n, _ in sums.values())
        shifts: dict[str, np.ndarray] = {}
        own: dict[str, np.ndarray] = {}
        for lang, (own_sum, n, articles) in sums.items():
            mean = own_sum / n
            if chunks > n:
                own[lang] = (mean - (total - own_sum) / (chunks - n)).astype(np.float32)
            weight = articles / (articles + cls.PRIOR_ARTICLES)
            shifts[lang] = (weight * (mean - total / chunks)).astype(np.float32)
        return shifts, own

    def offsets(self, query: np.ndarray, langs: list[str]) -> np.ndarray:
        pulls = {lang: float(shift @ query) for lang, shift in self.shifts.items()}
        return np.array([pulls.get(lang, 0.0) for lang in langs], dtype=np.float32)

    def pulls(self, query: np.ndarray, langs: list[str], question_lang: str, calibration: float,
              own_calibration: float) -> np.ndarray:
        """Per passage language in ``langs``, what is taken off its score for ``query``: ``calibration`` times
        its language's pull, plus ``own_calibration`` times the question's own-language pull for passages in
        ``question_lang``.  Retrieval takes it off passages, extraction off their sentences."""
        offsets = calibration * self.offsets(query, langs)
        if own_calibration > 0:
            own = own_calibration * self.own_language_pull(query, question_lang)
            offsets = offsets + own * (np.array(langs) == question_lang)
        return offsets

    def own_language_pull(self, query: np.ndarray, lang: str) -> float:
        """How much closer ``query`` (in ``lang``) sits to passages in ``lang`` than to the rest.

        0 without passages in both, and never negative: the correction only
        ever lowers passages of the question's language.
        """
        gap = self.own.get(lang)
        return max(0.0, float(gap @ query)) if gap is not None else 0.0


class QuestionNames:
    """The names of a question that the corpus knows, each weighted by how few articles name it.

    Names are what carries across languages (``TP HCM`` in a Vietnamese
    question is ``Kota Ho Chi Minh`` in the Indonesian article), so an article
    that names all of them is the likeliest answer; among thousands of news
    articles a country most of them name says little, a partner city a lot,
    hence the inverse-document-frequency weights.  :meth:`coverage` is the
    weighted share of the names an article names (in any of its chunks).
    """

    def __init__(self, store: Store, question: str, filters: SearchFilters | None = None):
        """``filters`` restrict the articles it names, not the weights (the corpus's)."""
        self.store = store
        self.filters = filters
        spread = store.name_spread(name_keys(question))
        articles = max(store.manifest.articles, 1)
        self.weights = {key: math.log(1 + articles / n) for key, n in spread.items()}
        self._total = sum(self.weights.values())
        self._named: dict[str, set[str]] = {}

    def __bool__(self) -> bool:
        return bool(self.weights)

    def articles_naming_most(self, n: int) -> list[str]:
        """The ``n`` articles that name the largest weighted share of the names."""
        if not self or n <= 0:
            return []
        named = self.store.names_in_articles(self.weights, filters=self.filters)
        self._named.update(named)
        return sorted(named, key=lambda doc_id: (-self._covered(named[doc_id]), doc_id))[:n]

    def coverage(self, doc_ids: list[str]) -> np.ndarray:
        """Per article of ``doc_ids``, the weighted share of the question's names it names (0 to 1)."""
        if not self:
            return np.zeros(len(doc_ids), dtype=np.float32)
        unknown = [doc_id for doc_id in dict.fromkeys(doc_ids) if doc_id not in self._named]
        if unknown:
            found = self.store.names_in_articles(self.weights, unknown)
            self._named.update({doc_id: found.get(doc_id, set()) for doc_id in unknown})
        return np.array([self._covered(self._named[doc_id]) / self._total for doc_id in doc_ids], dtype=np.float32)

    def _covered(self, keys: set[str]) -> float:
        return sum(self.weights[key] for key in keys)


def own_language_calibration(calibration: float, unnamed_share: float, names: QuestionNames | None) -> float:
    """How much of the question's own-language pull is taken off passages in its language (see LanguageCentroids).

    The full correction is what lets an article in another language compete
    with thousands in the question's: a Vietnamese question about the Malay
    seed article, whose names (``Jepun`` for ``Nhật Bản``) carry across.  A
    question that names nothing the corpus knows has nothing to carry: there
    the correction only lifted unrelated passages in other languages over the
    answer in its own (with 1,000 news articles indexed, an Indonesian passage
    0.05 below the answer to an external benchmark's Vietnamese question took
    first place), so it keeps ``unnamed_share`` of it.  ``names`` None (names not looked up) keeps it all.
    """
    return calibration if names is None or names else calibration * unnamed_share


class Retriever:
    """Dense search, corrected for the pull of each passage language, re-ranked by best sentence, fused with BM25."""

    def __init__(self, store: Store, embedder: Embedder, options: RetrievalOptions):
        self.store = store
        self.embedder = embedder
        self.options = options

    def search(self, question: str, k: int = 5, filters: SearchFilters | None = None) -> list[Hit]:
        """The ``k`` best passages among the articles passing ``filters`` (all when None)."""
        return self.search_embedded(question, self.embed(question), k, filters)

    def embed(self, question: str) -> np.ndarray:
        """The vector ``question`` is searched by.

        Vietnamese typed without diacritics is searched by the mean of its own
        vector and that of the question with its diacritics restored
        (:mod:`rag.diacritics`): the model places neither where the written
        question would be, and their mean comes closest.
        """
        query = self.embedder.embed_query(question)
        if not unaccented_vietnamese(question):
            return query
        both = query + self.embedder.embed_query(restore_vietnamese(question))
        return (both / np.linalg.norm(both)).astype(np.float32)

    def search_embedded(self, question: str, query: np.ndarray, k: int = 5,
                        filters: SearchFilters | None = None) -> list[Hit]:
        """:meth:`search` with the question's vector already made (answers reuse it to pick sentences).

        Every ranking (dense, lexical, names) is drawn from the admitted articles only.
        """
        options = self.options
        with faiss_threads(options.threads):
            dense = self._dense_candidates(query, max(k, options.candidates), filters)
        names = QuestionNames(self.store, question, filters) if options.name_weight > 0 else None
        if names:
            dense = self._with_named_articles(query, dense, names)
        cosine = dict(dense)
        passages = self.store.passages(cosine)
        ranked = self._rerank(query, dense, passages, detect_language(question), names)
        if options.lexical_weight > 0:
            by_names, by_words = self.store.lexical_search(question, options.candidates, filters)
            ranked = fuse([[(row_id, 0.0) for row_id in ranked], by_names, by_words],
                          [1.0, options.lexical_weight, options.lexical_words_weight])
        missing = [row_id for row_id in ranked if row_id not in passages]
        passages.update(self.store.passages(missing))
        ranked = without_copies(ranked, passages)
        ranked = spread_over_articles(ranked, [passages[row_id].doc_id for row_id in ranked], k,
                                      options.max_per_article)
        missing = [row_id for row_id in ranked if row_id not in cosine]
        if missing:  # lexical-only hits: score them on the dense scale too, for display and floors
            cosine.update(self._cosines(query, missing))
        return [Hit(rank, cosine[row_id], passages[row_id]) for rank, row_id in enumerate(ranked, start=1)]

    def _dense_candidates(self, query: np.ndarray, n: int, filters: SearchFilters | None) -> list[tuple[int, float]]:
        """The ``n`` nearest chunks, plus the ``language_candidates`` nearest of each passage language.

        With 7,000 Vietnamese articles against one Malay article, the 50
        nearest chunks of a Vietnamese question are all Vietnamese before the
        language correction of :meth:`_rerank` can weigh them: the Malay
        article that answers never becomes a candidate.  Drawing each
        language's nearest chunks too lets the corrected scores decide between
        languages, whatever their share of the corpus.
        """
        dense = list(self.store.search(query, n, filters))
        per_language = self.options.language_candidates
        wanted = set(filters.languages) if filters and filters.languages else None
        languages = [lang for lang in sorted(self.store.centroids().shifts) if wanted is None or lang in wanted]
        if per_language <= 0 or (len(languages) < 2 and per_language <= n):
            return dense  # one language admitted: its nearest chunks are the global pool's already
        seen = {row_id for row_id, _ in dense}
        floor = dense[0][1] - self.options.language_margin if dense and self.options.language_margin > 0 else -np.inf
        for lang in languages:
            only_lang = replace(filters or SearchFilters(), languages=(lang,))
            for row_id, score in self.store.search(query, per_language, only_lang):
                if row_id not in seen and score >= floor:
                    seen.add(row_id)
                    dense.append((row_id, score))
        return dense

    def _with_named_articles(self, query: np.ndarray, dense: list[tuple[int, float]],
                             names: QuestionNames) -> list[tuple[int, float]]:
        """The dense candidates plus the chunks of the articles naming most of the question's names.

        Among thousands of articles the one naming both places a question asks
        about may be nowhere near the dense top 50; fetched by name, it can
        compete.
        """
        seen = {row_id for row_id, _ in dense}
        extra = [row_id for row_id in self.store.chunk_rows(names.articles_naming_most(self.options.name_candidates))
                 if row_id not in seen]
        return dense + sorted(self._cosines(query, extra).items(), key=lambda item: -item[1]) if extra else dense

    def _rerank(self, query: np.ndarray, dense: list[tuple[int, float]], passages: dict[int, Passage],
                question_lang: str, names: QuestionNames | None = None) -> list[int]:
        """Order the dense candidates by language-corrected similarity, then the first few by their best sentence.

        Score = cos(q, chunk) + w * max cos(q, sentence), the sentence read in context
        or, with ``sentences_alone``, alone too (:meth:`rag.store.SentenceVectors.best_score`), each minus the pull of
        the passage's language (``language_calibration`` times its centroid offset)
        and, for passages in the question's language, :func:`own_language_calibration`
        times that language's own pull; plus ``name_weight`` times the share of
        the question's names the passage's article names.
        """
        options = self.options
        row_ids = [row_id for row_id, _ in dense]
        if not row_ids or (options.language_calibration == 0 and options.sentence_weight == 0
                           and options.same_language_calibration == 0 and not names):
            return row_ids
        langs = [passages[row_id].lang for row_id in row_ids]
        centroids = self.store.centroids()
        own = own_language_calibration(options.same_language_calibration, options.same_language_unnamed_share, names)
        offsets = centroids.pulls(query, langs, question_lang, options.language_calibration, own)
        scores = np.array([score for _, score in dense], dtype=np.float32) - offsets
        if names:
            scores = scores + options.name_weight * names.coverage([passages[row_id].doc_id for row_id in row_ids])
        order = np.argsort(-scores, kind="stable")
        if options.sentence_weight > 0 and options.rerank_candidates > 0:
            head = order[: options.rerank_candidates]
            sentences = self.store.sentence_vectors(row_ids[i] for i in head)
            best = np.array([sentences[row_ids[i]].best_score(query) if options.sentences_alone
                             else sentences[row_ids[i]].closest(query)[1] for i in head], dtype=np.float32)
            head_scores = scores[head] + options.sentence_weight * (best - offsets[head])
            order = np.concatenate([head[np.argsort(-head_scores, kind="stable")], order[len(head):]])
        return [row_ids[i] for i in order]

    def _cosines(self, query: np.ndarray, row_ids: list[int]) -> dict[int, float]:
        vectors = self.store.vectors_for(row_ids)
        return dict(zip(row_ids, (vectors @ query).tolist()))


def without_copies(ranked: list[int], passages: dict[int, Passage]) -> list[int]:
    """``ranked`` without the passages whose text repeats one ranked higher.

    News aggregators republish a story word for word under another id; its
    copies would take every slot of the results with one text.
    """
    seen: set[str] = set()
    kept = []
    for row_id in ranked:
        text = " ".join(passages[row_id].text.split()).casefold()
        if text not in seen:
            seen.add(text)
            kept.append(row_id)
    return kept


def spread_over_articles(ranked: list[int], doc_ids: list[str], k: int, per_article: int) -> list[int]:
    """The first ``k`` of ``ranked``, taking at most ``per_article`` passages of one article while others remain.

    Five chunks of one article naming one of the question's two places
    crowded out the article naming both; the passages held back fill the
    results only when no other article is left.  ``per_article`` 0 keeps the order.
    """
    if per_article <= 0:
        return ranked[:k]
    taken: list[int] = []
    held: list[int] = []
    per_doc: dict[str, int] = {}
    for row_id, doc_id in zip(ranked, doc_ids):
        if len(taken) == k:
            break
        if per_doc.get(doc_id, 0) < per_article:
            per_doc[doc_id] = per_doc.get(doc_id, 0) + 1
            taken.append(row_id)
        else:
            held.append(row_id)
    return taken + held[: k - len(taken)]


def fuse(rankings: list[list[tuple[int, float]]], weights: list[float]) -> list[int]:
    """Weighted reciprocal-rank fusion: robust to the very different score scales of BM25 and cosine."""
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights):
        for rank, (row_id, _) in enumerate(ranking, start=1):
            fused[row_id] = fused.get(row_id, 0.0) + weight / (RRF_K + rank)
    return sorted(fused, key=fused.get, reverse=True)
