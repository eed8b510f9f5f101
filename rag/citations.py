"""Citation markers in a generated answer: which sentence cites which source, and whether the source backs it.

Small models write markers in many shapes (``[1]``, ``[1, 2]``, ``[1-3]``,
``【1】``, ``[^1]``, ``[Source 1]``), after their sentence or before it, and
sometimes copy the prompt's literal ``[n]``.  :func:`parse` reads them all
into sentences with the source numbers they cite; :func:`check_answer` then
rewrites the answer with canonical markers (``[1][2]`` after each sentence),
drops placeholders and markers pointing to no source (one note), and checks
every sentence against the passages it cites.

A sentence is backed when its cited passages contain all its names (places
and countries by their language-independent keys, so "South Korea" is found
in "Hàn Quốc"; other names by their words) and all its numbers, and one of
their sentences says the same thing by cross-lingual embedding similarity.
Names come first because embeddings cannot tell "the mayor of Daejeon is Shin
Sang Jin" from "the mayor of Seongnam is Shin Sang Jin"; similarity second
because shared names alone do not make a claim true.  A sentence citing
nothing is flagged too, except a short lead-in ("Here is what the articles
say:") that states no fact.  See tests/test_citations.py for the labelled
claims these rules were chosen on.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from .answer_types import roles_in
from .answers import Citation, message, role_name
from .chunking import split_sentences
from .embeddings import Embedder
from .language import fold, written_in
from .names import NameMention, find_names, gazetteer_keys
from .numbers import number_spans, numbers_in
from .retrieval import Hit
from .store import SentenceVectors

_OPEN, _CLOSE = r"[\[【]", r"[\]】]"
_LABEL = r"(?i:(?:sources?|src|refs?|nguồn|sumber)\s*:?\s*)?"  # [Source 1], [nguồn 2]
_NUMBERS = r"\d{1,3}(?:\s*(?:[,;&–-]|and|dan|và)\s*\^?\d{1,3})*"
# A citation marker; group 1 holds its numbers.  Shared with rag.evaluation and ui.render.
MARKER_PATTERN = rf"{_OPEN}\s*\^?\s*{_LABEL}({_NUMBERS})\s*{_CLOSE}"
MARKER = re.compile(MARKER_PATTERN)
# The prompt's "[n]" copied literally, and other markers that name no source.
PLACEHOLDER = re.compile(rf"{_OPEN}\s*\^?\s*(?i:n|k|x|#|\?|number|num|source(?:\s*[nx#])?|citation|cite|ref)\s*{_CLOSE}")
_ANY_MARKER = re.compile(f"{MARKER_PATTERN}|{PLACEHOLDER.pattern}")
_RANGE = re.compile(r"(\d+)\s*[–-]\s*(\d+)")
MAX_RANGE = 20  # [1-3] is three sources; [1-999] is not a citation
_BULLET = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+")  # list item prefixes, kept out of the sentences
UNSUPPORTED_FLAG = " ⚠"
# Cosine similarity (multilingual-e5, query vs passage sentence) from which a passage sentence is taken to
# say the same thing as a claim whose names and numbers it contains: see tests/test_citations.py.  0.76 since
# the stored sentence vectors are pooled from their chunk's pass (index format 4), which scores a claim
# against its sentence lower: on the 45 labelled claims 0.80 then flagged 5 of 23 correct ones, 0.76 flags 2
# and lets 4 of 22 wrong ones through (all "unrelated" claims; no wrong name or number).
SUPPORT_SIMILARITY = 0.76
# A claim's number is where its source gives it when the words around it read closest to the words around that
# number in the source, rather than around another number of the source (each context is the number's
# NUMBER_CONTEXT_WORDS words on each side, the number itself masked).  Whole sentences cannot tell: across
# languages, e5 puts a sentence and the sentence beside it within 0.01 of a claim (eval/README.md).
NUMBER_CONTEXT_WORDS = 6
NUMBER_MASK = "#"
NAME_WORDS_FOUND = 0.5  # share of a person's or organisation's words the passage must contain
LEAD_IN_WORDS = 8  # "Berikut jawabannya:" is a lead-in; a long sentence ending in ":" states something


@dataclass(frozen=True)
class Sentence:
    """One sentence of an answer: its text without markers, and the source numbers it cites, in order."""

    text: str
    cites: tuple[int, ...]
    separator: str  # what comes before it in the answer: "", " ", "\n- ", "\n\n" ...


@dataclass(frozen=True)
class Parsed:
    sentences: tuple[Sentence, ...]
    placeholders: tuple[str, ...]  # markers naming no source, as written ("[n]")


@dataclass(frozen=True)
class Support:
    """Whether passages back a claim, and why not: the names and numbers they lack, or a weak match."""

    missing_names: tuple[str, ...]
    missing_numbers: tuple[str, ...]
    similarity: float  # the best cosine of the claim and a sentence of the passages
    quotes: Mapping[Hashable, tuple[str, float]]  # passage -> its sentence closest to the claim, and the cosine
    # offices the claim gives that the passages never name: a real model answered "Wali Kota Daejeon adalah
    # ông Nguyễn Văn Thọ" from an article naming Daejeon and Mr Tho (a Vietnamese council's vice chairman)
    missing_roles: tuple[str, ...] = ()
    # numbers the passages give about something else: a real model answered "34 kegiatan penghubung" (100
    # activities) from an article whose 34 is the number of Vietnam's provinces
    misplaced_numbers: tuple[str, ...] = ()

    @property
    def backed(self) -> bool:
        return (not self.missing_names and not self.missing_numbers and not self.missing_roles
                and not self.misplaced_numbers and self.similarity >= SUPPORT_SIMILARITY)

    @property
    def lacks(self) -> int:
        """How many names, numbers and offices the passages do not back: the closest source lacks the fewest."""
        return len(self.missing_names + self.missing_numbers + self.missing_roles + self.misplaced_numbers)

    def reason(self, lang: str = "en") -> str:
        """Why the claim is not backed, in ``lang`` (the question's language, which the notes are in)."""
        roles = tuple(role_name(role, lang) for role in self.missing_roles)
        for key, items in (("claim_missing_names", self.missing_names), ("claim_missing_numbers", self.missing_numbers),
                           ("claim_missing_roles", roles),
                           ("claim_misplaced_numbers", self.misplaced_numbers)):
            if items:
                return message(key, lang, items=", ".join(items))
        return message("claim_unsaid", lang)


@dataclass(frozen=True)
class CheckedAnswer:
    """The answer as it will be shown, or why it cannot be: ``unusable`` is set when nothing in it is backed.

    ``unusable`` is a reason's key (``"markers_only"``, ``"foreign"``, ``"uncited"``, ``"unbacked"``,
    ``"empty"``), said in the question's language by ``rag.answers.message(f"why_{key}", …)``.
    """

    text: str
    citations: tuple[Citation, ...]
    notes: tuple[str, ...]
    unusable: str | None = None


# ------------------------------------------------------------------------------- reading markers


def marker_numbers(marker: str) -> list[int]:
    """The source numbers of one marker or of a text's markers: ``[1-3]`` → 1, 2, 3; ``[2, 4]`` → 2, 4."""
    numbers: list[int] = []
    for group in MARKER.findall(marker):
        for part in re.split(r"\s*(?:[,;&]|and|dan|và)\s*", group):
            part = part.replace("^", "")
            span = _RANGE.fullmatch(part)
            if span and 0 <= int(span.group(2)) - int(span.group(1)) < MAX_RANGE:
                numbers.extend(range(int(span.group(1)), int(span.group(2)) + 1))
            elif span:
                numbers.extend((int(span.group(1)), int(span.group(2))))
            elif part.strip().isdigit():
                numbers.append(int(part))
    return numbers


def _tidy(text: str) -> str:
    return re.sub(r"\s+([.,;:!?…])", r"\1", re.sub(r"[ \t]+", " ", text)).strip()


def parse(answer: str, lang: str = "en") -> Parsed:
    """The sentences of ``answer`` and the sources each cites.

    A marker inside or right after a sentence belongs to it.  A marker
    between two sentences (at the start of one, or on a line of its own)
    belongs to the sentence before when that one has no marker of its own,
    and otherwise to the sentence after: "X. [1] Y. [2]" and "[1] X. [2] Y."
    both give X [1] and Y [2].
    """
    plain, markers, placeholders = _lift_markers(answer)
    spans, separators = _sentence_spans(plain, lang)
    if not spans:
        return Parsed((), tuple(placeholders))
    cites: list[list[int]] = [[] for _ in spans]
    between: dict[int, list[int]] = {}  # gap before sentence i -> the numbers found there
    for position, numbers in markers:
        inside = next((i for i, (start, end) in enumerate(spans) if start < position <= end), None)
        if inside is not None:
            cites[inside].extend(numbers)
        else:
            gap = next((i for i, (start, _) in enumerate(spans) if position <= start), len(spans))
            between.setdefault(gap, []).extend(numbers)
    for gap in sorted(between):  # left to right, so a sentence's leading markers count as its own
        before, after = gap - 1, gap
        owner = after if before < 0 or (cites[before] and after < len(spans)) else before
        cites[owner].extend(between[gap])
    sentences = tuple(
        Sentence(_tidy(plain[start:end]), tuple(dict.fromkeys(numbers)), separator)
        for (start, end), numbers, separator in zip(spans, cites, separators)
    )
    return Parsed(sentences, tuple(placeholders))


def _lift_markers(answer: str) -> tuple[str, list[tuple[int, list[int]]], list[str]]:
    """``answer`` without its markers, each marker's position in that text and numbers, and the placeholders."""
    pieces, markers, placeholders, cursor, length = [], [], [], 0, 0
    for match in _ANY_MARKER.finditer(answer):
        pieces.append(answer[cursor : match.start()])
        length += match.start() - cursor
        cursor = match.end()
        if match.group(1) is None:
            placeholders.append(match.group(0))
        else:
            markers.append((length, marker_numbers(match.group(0))))
    pieces.append(answer[cursor:])
    return "".join(pieces), markers, placeholders


def _sentence_spans(text: str, lang: str) -> tuple[list[tuple[int, int]], list[str]]:
    """Sentence spans of ``text`` line by line (so list items stay apart), and the separator before each.

    Pieces with no letter or digit (a lone bullet, a stray full stop) are not sentences.
    """
    spans: list[tuple[int, int]] = []
    prefixes: list[str] = []
    for line in re.finditer(r"[^\n]+", text):
        bullet = _BULLET.match(line.group())
        offset = line.start() + (bullet.end() if bullet else 0)
        first = True
        for start, end in split_sentences(text[offset : line.end()], lang):
            if not any(ch.isalnum() for ch in text[offset + start : offset + end]):
                continue
            spans.append((offset + start, offset + end))
            prefixes.append(bullet.group().strip() + " " if bullet and first else "")
            first = False
    separators = []
    for i, ((start, _), prefix) in enumerate(zip(spans, prefixes)):
        breaks = min(text.count("\n", spans[i - 1][1] if i else 0, start), 2)
        separators.append(("\n" * breaks if breaks else (" " if i else "")) + prefix)
    return spans, separators


# ------------------------------------------------------------------------------- checking claims


def supports(claim: str, claim_vector: np.ndarray, passages: Mapping[Hashable, tuple[str, SentenceVectors]],
             embedder: Embedder) -> Support:
    """Whether the cited ``passages`` (any key → text and stored sentences) back ``claim``, all of them together.

    ``embedder`` reads the words around the claim's numbers (:func:`_misplaced_numbers`).
    """
    text = "\n".join(passage for passage, _ in passages.values())
    places, words = gazetteer_keys(text), set(re.findall(r"\w+", fold(text)))
    missing_names = tuple(dict.fromkeys(m.surface for m in find_names(claim) if not _name_found(m, places, words)))
    missing_numbers = tuple(sorted(numbers_in(claim) - numbers_in(text)))
    misplaced = _misplaced_numbers(claim, [(passage, own.spans) for passage, own in passages.values()], embedder)
    quotes = {}
    for key, (passage, own) in passages.items():
        closest, similarity = own.closest(claim_vector)
        quotes[key] = (own.texts(passage)[closest], similarity)
    best = max(similarity for _, similarity in quotes.values())
    missing_roles = tuple(sorted(roles_in(claim) - roles_in(text)))
    return Support(missing_names, missing_numbers, best, quotes, missing_roles, misplaced)


@dataclass(frozen=True)
class _Number:
    """A number of a passage: its value, where it is written, and the words around it (:func:`_number_context`)."""

    value: str
    passage: int
    span: tuple[int, int]
    context: str
    context_span: tuple[int, int]

    def written_in_context_of(self, other: _Number) -> bool:
        return (self.passage == other.passage and other.context_span[0] <= self.span[0]
                and self.span[1] <= other.context_span[1])


def _misplaced_numbers(claim: str, passages: Sequence[tuple[str, Sequence[tuple[int, int]]]],
                       embedder: Embedder) -> tuple[str, ...]:
    """The claim's numbers that the passages give, but where the words around them say something else.

    Each number the claim shares with the passages is compared, by the words around it, with the
    passages' other numbers: it is misplaced when another number's context reads closer than any of its
    own value's.  A context stays within its sentence (``passages`` are texts with their sentence spans).
    Numbers written within each other's context ("1-24 Mei 2025", "15/7/2025", "8-0") share
    their words and are not told apart.  On the labelled claims (tests/data/claims.jsonl) every correct
    claim's number reads closest to its own context, and "34 Japanese localities" (34 is Vietnam's
    provinces; the Japanese localities are 18) reads closer to the 18; `python -m bench claims` measures the
    same on news sentences whose number was swapped for one their neighbours give.
    """
    given = [_Number(value, i, (start, end), *_number_context(passage, start, end, _sentence_at(spans, start)))
             for i, (passage, spans) in enumerate(passages) for value, start, end in number_spans(passage)]
    checked = []
    for value, start, end in number_spans(claim):
        own = [g for g in given if g.value == value]
        rivals = [g for g in given if g.value != value and not any(g.written_in_context_of(o) for o in own)]
        if own and rivals:
            checked.append((value, _number_context(claim, start, end)[0], own, rivals))
    if not checked:
        return ()
    contexts = list(dict.fromkeys(g.context for _, _, own, rivals in checked for g in own + rivals))
    vectors = dict(zip(contexts, embedder.embed_passages(contexts)))
    claim_vectors = embedder.embed_queries([context for _, context, _, _ in checked])

    def closest(numbers: list[_Number], vector: np.ndarray) -> float:
        return max(float(vectors[g.context] @ vector) for g in numbers)

    return tuple(dict.fromkeys(value for (value, _, own, rivals), vector in zip(checked, claim_vectors)
                               if closest(own, vector) < closest(rivals, vector)))


def _number_context(text: str, start: int, end: int, sentence: tuple[int, int] | None = None
                    ) -> tuple[str, tuple[int, int]]:
    """The words around the number at ``text[start:end]`` within its ``sentence`` (default: all of ``text``),
    the number masked (what it counts, not its value), and the span of ``text`` they cover."""
    first, last = sentence or (0, len(text))
    before = list(re.finditer(r"\w+", text[first:start]))[-NUMBER_CONTEXT_WORDS:]
    after = list(re.finditer(r"\w+", text[end:last]))[:NUMBER_CONTEXT_WORDS]
    words = [m.group() for m in before] + [NUMBER_MASK] + [m.group() for m in after]
    return " ".join(words), (first + before[0].start() if before else start, end + after[-1].end() if after else end)


def _sentence_at(spans: Sequence[tuple[int, int]], position: int) -> tuple[int, int] | None:
    return next(((start, end) for start, end in spans if start <= position < end), None)


def _name_found(mention: NameMention, places: frozenset[str], words: set[str]) -> bool:
    """A place or country by its key, in any language; another name by half of its words.

    People keep their names across languages but not their titles
    ("Mayor Shin Sang Jin", "Bapak Shin Sang Jin"), and organisation names are
    translated word by word, so those need only half their words.
    """
    own = [w for w in fold(mention.surface).split() if len(w) > 1]
    if not mention.key.startswith("name:"):
        return mention.key in places or all(w in words for w in own)
    return not own or sum(w in words for w in own) >= NAME_WORDS_FOUND * len(own)


def is_lead_in(sentence: str) -> bool:
    """A short sentence ending in a colon that names nothing and gives no number: it introduces, it does not claim."""
    return (sentence.rstrip().endswith(":") and len(sentence.split()) <= LEAD_IN_WORDS
            and not find_names(sentence) and not numbers_in(sentence))


def check_answer(
    answer: str, sources: Sequence[Sequence[Hit]], embedder: Embedder, sentences_of: Mapping[int, SentenceVectors],
    lang: str = "en",
) -> CheckedAnswer:
    """``answer`` with canonical markers and ⚠ on every sentence its sources do not back; ``[1]`` is ``sources[0]``.

    A source is the passages of one article (``rag.generation.by_article``):
    a claim citing it is checked against all of them together, so a right
    answer citing its article's other passage is backed.  ``sentences_of``
    maps a passage's row id to its stored sentences.  The answer is
    ``unusable`` when it has no text besides markers, when it is not written in
    ``lang`` (the user reads that language, and the model was asked for it), or
    when none of its claims is backed.
    """
    parsed = parse(answer, lang)
    notes = _removed_markers_note(parsed, len(sources), lang)
    if not parsed.sentences:
        return CheckedAnswer("", (), tuple(notes), "markers_only")
    if written_in(answer, lang) is False:
        return CheckedAnswer("", (), tuple(notes), "foreign")
    valid = [tuple(n for n in s.cites if 1 <= n <= len(sources)) for s in parsed.sentences]
    checked = [i for i, cites in enumerate(valid) if cites]
    vectors = embedder.embed_queries([parsed.sentences[i].text for i in checked]) if checked else []
    support: dict[int, Support] = {}
    for i, vector in zip(checked, vectors):
        cited = valid[i]
        valid[i], support[i] = _backing_sources(parsed.sentences[i].text, vector, cited, sources, sentences_of, embedder)
        if valid[i] != cited:
            dropped = [f"[{n}]" for n in cited if n not in valid[i]]
            notes.append(message("marker_not_backing" if len(dropped) == 1 else "markers_not_backing", lang,
                                 markers="".join(dropped), sentence=parsed.sentences[i].text))

    pieces, claims, backed_claims = [], 0, 0
    for i, sentence in enumerate(parsed.sentences):
        markers = "".join(f"[{n}]" for n in valid[i])
        if not valid[i] and is_lead_in(sentence.text):
            pieces.append(sentence.separator + sentence.text)
            continue
        claims += 1
        ok = i in support and support[i].backed
        backed_claims += ok
        if not ok:
            why = support[i].reason(lang) if i in support else message("claim_uncited", lang)
            notes.append(f"⚠ “{sentence.text}”: {why}.")
        pieces.append(f"{sentence.separator}{sentence.text}{' ' + markers if markers else ''}"
                      f"{'' if ok else UNSUPPORTED_FLAG}")
    citations = _citations(sources, valid, support)
    if not backed_claims:
        return CheckedAnswer("".join(pieces), citations, tuple(notes), "unbacked" if support else "uncited")
    return CheckedAnswer("".join(pieces), citations, tuple(notes))


def _backing_sources(claim: str, vector: np.ndarray, cited: tuple[int, ...], sources: Sequence[Sequence[Hit]],
                     sentences_of: Mapping[int, SentenceVectors], embedder: Embedder) -> tuple[tuple[int, ...], Support]:
    """The cited sources that back ``claim`` each on its own, and their support; when none does, all of them,
    with the support of the one that comes closest (it says why the claim is not backed).

    A real model wrote "14 Korean businesses took part in the Seongnam delegation's business trip to Thanh
    Hoa. [1][2]" where only [1] says so (eval/README.md): checked together, [2] would be shown as backing a
    claim its article never makes.  And two articles together must not back what neither says: Seongnam's
    names Shin Sang Jin as mayor, Daejeon's names Daejeon, and "Wali Kota Daejeon adalah Bapak Shin Sang Jin
    [1][2]" is still wrong.
    """
    def support_of(numbers: Sequence[int]) -> Support:
        return supports(claim, vector, {hit: (hit.passage.text, sentences_of[hit.passage.row_id])
                                        for n in numbers for hit in sources[n - 1]}, embedder)

    alone = {n: support_of((n,)) for n in cited}
    backing = tuple(n for n in cited if alone[n].backed)
    if backing:
        return backing, alone[backing[0]] if len(backing) == 1 else support_of(backing)
    closest = max(alone.values(), key=lambda s: (-s.lacks, s.similarity))
    return cited, replace(closest, quotes={key: quote for s in alone.values() for key, quote in s.quotes.items()})


def _removed_markers_note(parsed: Parsed, n_sources: int, lang: str) -> list[str]:
    dangling = sorted({n for s in parsed.sentences for n in s.cites if not 1 <= n <= n_sources})
    removed = [*dict.fromkeys(parsed.placeholders), *(f"[{n}]" for n in dangling)]
    return [message("markers_no_source", lang, markers=", ".join(removed))] if removed else []


def _citations(sources: Sequence[Sequence[Hit]], valid: list[tuple[int, ...]],
               support: dict[int, Support]) -> tuple[Citation, ...]:
    """One citation per cited source: its passage and sentence that back a claim best, supported when any
    sentence citing it is backed."""
    best: dict[int, tuple[float, str, Hit]] = {}
    backed: dict[int, bool] = {}
    for i, check in support.items():
        for n in valid[i]:
            backed[n] = backed.get(n, False) or check.backed
            for hit in sources[n - 1]:
                quote, similarity = check.quotes[hit]
                if n not in best or similarity > best[n][0]:
                    best[n] = (similarity, quote, hit)
    return tuple(Citation(n, best[n][2], best[n][1], backed[n]) for n in sorted(best))
