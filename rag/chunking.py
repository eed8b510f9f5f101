"""Cutting articles into overlapping, token-counted passages.

Passages end on sentence boundaries so that a citation shows whole sentences,
and consecutive passages share a few sentences so that a fact spanning a
boundary is still found.  Sizes are counted with ``tiktoken`` (the same count
the prompt budget uses), and every passage keeps its character offsets in the
article so the UI can show it in context.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sentencex import segment

from .corpus import Article
from .tokens import get_encoding

# Tokens after which sentencex wrongly ends a sentence ("TP. HCM", "Tn. Nguyen", "dll.").
_ABBREVIATIONS = frozenset(
    "tp tn ny bpk dr mr mrs ms st no dll dsb dst sdr prof ir hj ts ths gs pgs tt q p vs etc inc co ltd".split()
)
_LAST_WORD = re.compile(r"(\w+)\.\W*$")
_SUPPORTED_SEGMENTER_LANGS = frozenset({"en", "vi", "id", "ms", "tl", "fr", "de", "es", "pt", "ru", "th", "ja", "ko", "zh"})


@dataclass(frozen=True)
class Chunk:
    """One passage of an article: what gets embedded, retrieved and cited."""

    doc_id: str
    position: int  # 0-based order within the article
    text: str
    start: int  # character offsets into Article.text
    end: int
    n_tokens: int
    title: str
    title_in_text: bool = False  # the title only repeats the article's opening (a title made from the body)
    sentences: tuple[tuple[int, int], ...] = ()  # spans in ``text`` of its sentences (or pieces of long ones)

    @property
    def chunk_id(self) -> str:
        return f"{self.doc_id}#{self.position}"

    def embedding_text(self) -> str:
        """The title travels with every passage: many passages never name the article's subject.

        A title that merely repeats the article's first words is left out: it
        adds one unrelated sentence to every passage, and on the external
        benchmark (whose passages have no titles) leaving it out raised dense
        recall@5 in every group (bench/results-retrieval.md).
        """
        return f"{self.title}\n{self.text}" if self.title and not self.title_in_text else self.text


def split_sentences(text: str, lang: str = "en") -> list[tuple[int, int]]:
    """Character spans of the sentences in ``text``, paragraph breaks always ending a sentence."""
    spans: list[tuple[int, int]] = []
    language = lang if lang in _SUPPORTED_SEGMENTER_LANGS else "en"
    for paragraph in re.finditer(r"[^\n]+(?:\n(?!\n)[^\n]+)*", text):
        offset = paragraph.start()
        pieces: list[list[int]] = []
        for piece in segment(language, paragraph.group()):
            stripped = piece.strip()
            if not stripped:
                offset += len(piece)
                continue
            lead = len(piece) - len(piece.lstrip())
            begin, end = offset + lead, offset + lead + len(stripped)
            if pieces and _continues(text[pieces[-1][0] : pieces[-1][1]], stripped):
                pieces[-1][1] = end
            else:
                pieces.append([begin, end])
            offset += len(piece)
        spans.extend((begin, end) for begin, end in pieces)
    return spans


def _continues(previous: str, following: str) -> bool:
    """True when a split between ``previous`` and ``following`` is a false sentence end."""
    if following[0].islower():
        return True
    match = _LAST_WORD.search(previous)
    return bool(match and match.group(1).casefold() in _ABBREVIATIONS)


def chunk_article(article: Article, max_tokens: int, overlap: int, encoding: str) -> list[Chunk]:
    """Pack whole sentences into passages of at most ``max_tokens`` tokens, sharing ~``overlap`` tokens."""
    enc = get_encoding(encoding)
    units = []  # (start, end, n_tokens): sentences, or pieces of over-long sentences
    for start, end in split_sentences(article.text, article.lang):
        sentence = article.text[start:end]
        n = len(enc.encode(sentence, disallowed_special=()))
        if n <= max_tokens:
            units.append((start, end, n))
        else:
            units.extend(_split_long(sentence, start, max_tokens, enc))

    chunks: list[Chunk] = []
    title_in_text = _opens_with(article.text, article.title)
    first = 0
    while first < len(units):
        last, total = first, units[first][2]
        while last + 1 < len(units) and total + units[last + 1][2] <= max_tokens:
            last += 1
            total += units[last][2]
        start, end = units[first][0], units[last][1]
        sentences = tuple((s - start, e - start) for s, e, _ in units[first : last + 1])
        chunks.append(
            Chunk(
                doc_id=article.doc_id,
                position=len(chunks),
                text=article.text[start:end],
                start=start,
                end=end,
                n_tokens=total,
                title=article.title,
                title_in_text=title_in_text,
                sentences=sentences,
            )
        )
        if last + 1 >= len(units):
            break
        first = _overlap_start(units, first, last, overlap)
    return chunks


def _opens_with(text: str, title: str) -> bool:
    """True when ``title`` is the opening of ``text`` (a shortened title may end with an ellipsis)."""
    head = " ".join(title.rstrip("…").split())
    return bool(head) and " ".join(text[: 2 * len(title) + 100].split()).startswith(head)


def _overlap_start(units: list[tuple[int, int, int]], first: int, last: int, overlap: int) -> int:
    """Index of the first unit of the next passage: go back while the shared part fits ``overlap``."""
    start, shared = last + 1, 0
    while start - 1 > first and shared + units[start - 1][2] <= overlap:
        start -= 1
        shared += units[start][2]
    return start


def _split_long(sentence: str, offset: int, max_tokens: int, enc) -> list[tuple[int, int, int]]:
    """Cut a sentence longer than a passage into equal token windows (tables, lists without full stops).

    Equal sizes, not full windows and a remainder: a remainder can be a lone
    "." that would become a passage of its own and match every question alike.
    """
    tokens = enc.encode(sentence, disallowed_special=())
    _, starts = enc.decode_with_offsets(tokens)
    n_pieces = -(-len(tokens) // max_tokens)
    bounds = [round(i * len(tokens) / n_pieces) for i in range(n_pieces + 1)]
    pieces = []
    for first, last in zip(bounds, bounds[1:]):
        begin = starts[first]
        end = starts[last] if last < len(tokens) else len(sentence)
        pieces.append((offset + begin, offset + end, last - first))
    return pieces
