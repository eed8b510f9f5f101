"""Citation markers in an answer: which passage each ``[n]`` points to, and whether it backs the sentence.

A marker pointing to no source is removed (and noted).  Every cited passage
is checked against the sentence citing it: by shared names and numbers, or,
because answers and articles are usually in different languages, by the
cross-lingual embedding similarity of the sentence and the passage's best
sentence.  A sentence none of whose sources backs it is flagged with ⚠ rather
than shown as if it were grounded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from .answers import Citation
from .chunking import split_sentences
from .embeddings import Embedder
from .language import lexical_tokens, name_tokens
from .retrieval import Hit
from .store import SentenceVectors

MARKER_PATTERN = r"\[\s*(\d+(?:\s*[,;]\s*\d+)*)\s*\]"  # [1], [2, 3], [ 4 ]
MARKER = re.compile(MARKER_PATTERN)
UNSUPPORTED_FLAG = " ⚠"
# Cosine similarity (multilingual-e5) above which a passage sentence is taken to say the same thing.
SUPPORT_SIMILARITY = 0.82
SUPPORT_OVERLAP = 0.5  # share of the sentence's names and numbers found in the passage


@dataclass(frozen=True)
class CitedAnswer:
    text: str
    citations: list[Citation]
    notes: list[str]


def marker_numbers(text: str) -> list[int]:
    return [int(n) for group in MARKER.findall(text) for n in re.split(r"[,;]", group)]


def strip_markers(text: str) -> str:
    return re.sub(r"\s+([.,;:!?])", r"\1", MARKER.sub("", text)).strip()


def resolve(
    answer: str, sources: list[Hit], embedder: Embedder, sentences_of: Mapping[int, SentenceVectors], lang: str = "en"
) -> CitedAnswer:
    """Map the markers of ``answer`` to ``sources`` ([1] is ``sources[0]``), drop dangling ones, check support.

    ``sentences_of`` maps a source's row id to its stored sentences, among which each claim's quote is found.
    """
    notes: list[str] = []
    dangling = sorted({n for n in marker_numbers(answer) if not 1 <= n <= len(sources)})
    if dangling:
        answer = _drop_numbers(answer, set(dangling))
        notes.append(f"Removed citation(s) {', '.join(f'[{n}]' for n in dangling)}: no such source.")

    quotes: dict[int, tuple[str, float]] = {}  # n -> best quote and its similarity
    supported: dict[int, bool] = {}
    pieces = []
    spans = split_sentences(answer, lang)
    for start, end in spans:
        sentence = answer[start:end]
        numbers = sorted(set(marker_numbers(sentence)))
        claim = strip_markers(sentence)
        claim_vector = embedder.embed_query(claim) if numbers else None
        backed = False
        for n in numbers:
            passage = sources[n - 1].passage
            own = sentences_of[passage.row_id]
            closest, similarity = own.closest(claim_vector)
            quote = own.texts(passage.text)[closest]
            ok = similarity >= SUPPORT_SIMILARITY or name_overlap(claim, passage.text) >= SUPPORT_OVERLAP
            backed |= ok
            supported[n] = supported.get(n, False) or ok
            if n not in quotes or similarity > quotes[n][1]:
                quotes[n] = (quote, similarity)
        pieces.append(sentence + (UNSUPPORTED_FLAG if numbers and not backed else ""))
        if numbers and not backed:
            notes.append(f"Not backed by its source(s): “{claim}”")
    text = _rejoin(answer, spans, pieces)
    citations = [Citation(n, sources[n - 1], quotes[n][0], supported[n]) for n in sorted(quotes)]
    return CitedAnswer(text, citations, notes)


def name_overlap(claim: str, passage: str) -> float:
    """Share of the claim's names and numbers (capitalised words, digits) that the passage contains."""
    keys = name_tokens(claim)
    if not keys:
        return 0.0
    return len(keys & set(lexical_tokens(passage))) / len(keys)


def _drop_numbers(text: str, numbers: set[int]) -> str:
    def keep(match: re.Match) -> str:
        kept = [n for n in re.split(r"\s*[,;]\s*", match.group(1)) if int(n) not in numbers]
        return f"[{', '.join(kept)}]" if kept else ""

    return MARKER.sub(keep, text)


def _rejoin(original: str, spans: list[tuple[int, int]], pieces: list[str]) -> str:
    """Put flagged sentences back with the original separators (spaces, paragraph breaks)."""
    out, cursor = [], 0
    for (start, end), piece in zip(spans, pieces):
        out.append(original[cursor:start] + piece)
        cursor = end
    return "".join(out) + original[cursor:]
