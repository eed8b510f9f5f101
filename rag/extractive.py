"""Answers without a language model: the best few sentences of the retrieved passages, each cited.

Used when no LLM endpoint is configured (the offline default) and as the
fallback when the endpoint fails.  Sentences are ranked by cross-lingual
embedding similarity to the question, plus a bonus for sharing its names and
numbers, so "Who is the mayor of Seongnam?" picks the sentence naming him even
though it is in Indonesian; a shared word counts by how few of the candidate
sentences have it, since the topic every one of them names tells them apart
least.  The best few are scored again with each sentence also encoded on its
own, not only in its passage's context (:func:`_rescored_alone`).  The
similarity is corrected for the pull of each sentence's language, as
retrieval corrects passages (:class:`rag.retrieval.LanguageCentroids`): a
Vietnamese question otherwise quotes the one Vietnamese article, and an
English one Indonesian text, before the sentence that answers.  Questions that
ask for an amount, a date or a number only take sentences that contain one
(:mod:`rag.answer_types`), and a sentence about another place than the
question's is not quoted (:func:`_without_other_places`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .answer_types import SOFT_TYPES, expected_type, has_type
from .answers import Citation
from .language import detect_language, lexical_tokens, name_tokens, shares_words
from .names import sentences_elsewhere
from .retrieval import Hit, LanguageCentroids
from .store import SentenceVectors

MAX_SENTENCES = 3
MARGIN = 0.035  # sentences scoring within this of the best one are kept too
# Added for a sentence containing all the question's words (same language) or names and numbers (other
# languages), each found in no other candidate sentence; a word counts by its rarity (see _overlap).
OVERLAP_BONUS = 0.2
MIN_SENTENCE_WORDS = 5
# The share of a sentence's similarity taken from the sentence encoded on its own, for the RESCORED best
# candidates (see _rescored_alone).
ALONE_WEIGHT = 0.3
RESCORED = 8


@dataclass(frozen=True)
class Extract:
    text: str
    citations: list[Citation]
    best_score: float  # how well the best sentence matches the question (for the relevance floor)


def extract_answer(
    question: str, query: np.ndarray, hits: list[Hit], sentences_of: Mapping[int, SentenceVectors],
    language_pull: Sequence[float] | None = None, encode: Callable[[list[str]], np.ndarray] | None = None,
) -> Extract:
    """The best sentences of ``hits`` for ``question`` (whose vector is ``query``).

    ``sentences_of`` maps a hit's row id to its stored sentences and their vectors;
    ``language_pull`` gives, per hit, how much its language alone pulls the
    question (:func:`language_pulls`), taken off its sentences' similarity for ranking;
    ``encode`` (the embedder's ``embed_passages``), when given, encodes the best
    candidates on their own for :func:`_rescored_alone`.
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
    overlaps = [_overlap(words if shares_words(hits[i].passage.lang, lang) else names, own, rarity, len(tokens))
                for (i, _, _), own in zip(candidates, tokens)]
    scores = similarity - pulls + OVERLAP_BONUS * np.array(overlaps)
    answer_type = expected_type(question)
    typed = np.array([has_type(sentence, answer_type, question) for sentence in sentences])
    if not typed.any() and answer_type in SOFT_TYPES:
        typed[:] = True
    if not typed.any():
        return Extract("", [], 0.0)
    scores = np.where(typed, scores, -np.inf)
    if answer_type != "place":  # a "which province …" answer names a place the question does not
        passages = [f"{hit.passage.title}\n{hit.passage.text}" for hit in hits]
        scores = _without_other_places(scores, question, sentences, passages)
    if encode is not None:
        scores = _rescored_alone(scores, similarity, sentences, query, encode)
    chosen = _choose(scores)

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


def _without_other_places(scores: np.ndarray, question: str, sentences: list[str], passages: list[str]) -> np.ndarray:
    """``scores`` without the sentences about another place than the question's (:func:`sentences_elsewhere`).

    Articles about one partnership mention its siblings ("… as Japan did in
    2023" in an article about Korea), and such a sentence scores within the
    margin of the one that answers: it was quoted beside it, cited as backing
    what it does not say.  Only the candidates still in the running count, so
    when all of them are about another place they all stay.  ``passages`` (the
    hits' titles and texts) tell a question answered in parts by several
    articles, whose sentences each name only some of its places.  Not applied to
    "which province …" questions, whose answer is a place the question does not name.
    """
    live = np.flatnonzero(np.isfinite(scores))
    elsewhere = np.zeros(len(scores), dtype=bool)
    elsewhere[live] = sentences_elsewhere(question, [sentences[i] for i in live], passages)
    return np.where(elsewhere, -np.inf, scores)


def _rescored_alone(scores: np.ndarray, similarity: np.ndarray, sentences: list[str], query: np.ndarray,
                    encode: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """``scores`` with the best :data:`RESCORED` sentences' similarity partly taken from each encoded alone.

    A sentence's stored vector is pooled in its passage's context, so the
    sentences of one passage lean to its topic and score within ~0.01 of each
    other, most of all across languages (an English question, a Vietnamese
    passage): the one that answers is not told from its neighbours.  Encoded
    alone, a sentence says only what it says.  Only the best few are encoded,
    at ~0.3 s a question on a loaded 2-core machine; encoding every candidate,
    half and half, gave better first sentences but shorter answers and no
    better accuracy, and 0.3 alone beat 0.5 on the eval set (eval/README.md,
    2026-12-03).  The relevance floor keeps reading the in-context similarity.
    """
    top = [int(i) for i in np.argsort(-scores)[:RESCORED] if np.isfinite(scores[i])]
    if not top:
        return scores
    alone = encode([sentences[i] for i in top]) @ query
    rescored = scores.copy()
    rescored[top] += ALONE_WEIGHT * (alone - similarity[top])
    return rescored


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


def _overlap(keys: set[str], tokens: set[str], rarity: Callable[[str], float], candidates: int) -> float:
    """The rarity of the ``keys`` a sentence with ``tokens`` contains, as a share of the most it could be.

    The most is the rarity of a key no candidate has, for each of the
    question's keys, so a key most candidates share adds little.  As a share of
    the question's own keys' rarity, a question with one key gave every
    sentence holding it the whole bonus however many did: "What did Luther call
    the mass instead of sacrifice?" put each Vietnamese sentence naming Luther
    0.1 ahead of the one that says "ông" (he) and answers, though that one was
    the closer to the question (0.809 against 0.802).
    """
    most = len(keys) * math.log((candidates + 1) / 0.5)
    return sum(rarity(key) for key in keys & tokens) / most if most > 0 else 0.0

