"""Answers without a language model: the best few sentences of the retrieved passages, each cited.

Used when no LLM endpoint is configured (the offline default) and as the
fallback when the endpoint fails.  Sentences are ranked by cross-lingual
embedding similarity to the question, plus a bonus for sharing its names and
numbers, so "Who is the mayor of Seongnam?" picks the sentence naming him even
though it is in Indonesian; a shared word counts by how few of the candidate
sentences have it, since the topic every one of them names tells them apart
least.  The similarity is corrected for the pull of each sentence's language,
as retrieval corrects passages (:class:`rag.retrieval.LanguageCentroids`): a
Vietnamese question otherwise quotes the one Vietnamese article, and an
English one Indonesian text, before the sentence that answers.  Questions that
ask for an amount, a date or a number only take sentences that contain one
(:mod:`rag.answer_types`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .answer_types import SOFT_TYPES, expected_type, has_type
from .answers import Citation
from .language import detect_language, lexical_tokens, name_tokens
from .retrieval import Hit, LanguageCentroids
from .store import SentenceVectors

MAX_SENTENCES = 3
MARGIN = 0.03  # sentences scoring within this of the best one are kept too
# Added for a sentence containing all the question's words (same language) or names and numbers (other
# languages), each word weighted by its rarity among the candidate sentences.
OVERLAP_BONUS = 0.1
MIN_SENTENCE_WORDS = 5


@dataclass(frozen=True)
class Extract:
    text: str
    citations: list[Citation]
    best_score: float  # how well the best sentence matches the question (for the relevance floor)


def extract_answer(
    question: str, query: np.ndarray, hits: list[Hit], sentences_of: Mapping[int, SentenceVectors],
    language_pull: Sequence[float] | None = None,
) -> Extract:
    """The best sentences of ``hits`` for ``question`` (whose vector is ``query``).

    ``sentences_of`` maps a hit's row id to its stored sentences and their vectors;
    ``language_pull`` gives, per hit, how much its language alone pulls the
    question (:func:`language_pulls`), taken off its sentences' similarity for ranking.
    """
    candidates = _candidate_sentences(hits, sentences_of)
    if not candidates:
        return Extract("", [], 0.0)
    sentences = [sentence for _, sentence, _ in candidates]
    similarity = np.vstack([vector for _, _, vector in candidates]) @ query
    pulls = np.array([language_pull[i] for i, _, _ in candidates]) if language_pull is not None else 0.0
    lang = detect_language(question)
    words = {t for t in lexical_tokens(question) if len(t) > 2 or t.isdigit()}
    names = name_tokens(question)
    tokens = [set(lexical_tokens(sentence)) for sentence in sentences]
    rarity = _rarity(tokens)
    overlaps = [_overlap(words if hits[i].passage.lang == lang else names, own, rarity)
                for (i, _, _), own in zip(candidates, tokens)]
    scores = similarity - pulls + OVERLAP_BONUS * np.array(overlaps)
    answer_type = expected_type(question)
    typed = np.array([has_type(sentence, answer_type, question) for sentence in sentences])
    if not typed.any() and answer_type in SOFT_TYPES:
        typed[:] = True
    if not typed.any():
        return Extract("", [], 0.0)
    chosen = _choose(np.where(typed, scores, -np.inf))

    numbers: dict[int, int] = {}  # index in hits -> citation number
    quotes: dict[int, list[str]] = {}  # a passage cited by several sentences quotes them all
    lines = []
    for index in chosen:
        hit_index, sentence, _ = candidates[index]
        n = numbers.setdefault(hit_index, len(numbers) + 1)
        quotes.setdefault(n, []).append(sentence)
        lines.append(f"- {sentence} [{n}]")
    citations = [Citation(n, hits[hit_index], " … ".join(quotes[n])) for hit_index, n in numbers.items()]
    return Extract("\n".join(lines), citations, float(similarity[chosen[0]]))


def language_pulls(centroids: LanguageCentroids, query: np.ndarray, hits: list[Hit], question_lang: str,
                   calibration: float, own_calibration: float) -> np.ndarray:
    """Per hit, the share of its language's pull on ``query`` that retrieval takes off its passage.

    The same correction as retrieval's (:meth:`LanguageCentroids.pulls`), applied to sentences.
    """
    return centroids.pulls(query, [hit.passage.lang for hit in hits], question_lang, calibration, own_calibration)


def _candidate_sentences(
    hits: list[Hit], sentences_of: Mapping[int, SentenceVectors]
) -> list[tuple[int, str, np.ndarray]]:
    """(index in hits, sentence, its vector) for the sentences worth quoting, each once."""
    candidates, seen = [], set()
    for index, hit in enumerate(hits):
        own = sentences_of[hit.passage.row_id]
        for sentence, vector in zip(own.texts(hit.passage.text), own.vectors):
            if len(sentence.split()) >= MIN_SENTENCE_WORDS and sentence not in seen:  # overlapping chunks repeat
                seen.add(sentence)
                candidates.append((index, sentence, vector))
    return candidates


def _choose(scores: np.ndarray) -> list[int]:
    order = [int(i) for i in np.argsort(-scores)]
    best = scores[order[0]]
    return [i for i in order[:MAX_SENTENCES] if scores[i] >= best - MARGIN]


def _rarity(tokens: Sequence[set[str]]) -> Callable[[str], float]:
    """How rare a word is among the candidate sentences (their own IDF), for weighting the overlap.

    The question's topic is named by most sentences of a passage about it
    ("Anwar", "Izumo", "Super Bowl"), while the sentence that answers often
    says "he" or "the ship": a word every candidate shares tells them apart
    no better than a stop word, a word few share does.
    """
    counts = Counter(token for own in tokens for token in own)
    n = len(tokens)
    return lambda key: math.log((n + 1) / (counts[key] + 0.5))


def _overlap(keys: set[str], tokens: set[str], rarity: Callable[[str], float]) -> float:
    """The share of ``keys`` (weighted by ``rarity``) that a sentence with ``tokens`` contains."""
    total = sum(rarity(key) for key in keys)
    return sum(rarity(key) for key in keys & tokens) / total if total > 0 else 0.0

