"""Language detection and accent-insensitive text folding.

Detection uses lingua, whose models ship inside the wheel (works offline) and
which tells Indonesian from Malay reliably, even on short questions.  Folding
is what lets ``Thanh Hóa`` match ``Thanh Hoa`` and ``Đà Nẵng`` match
``Da Nang`` in lexical search and in answer grading.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from lingua import Language, LanguageDetectorBuilder

# Languages the corpus and users are expected to use; more can be added here.
SUPPORTED = (
    Language.ENGLISH,
    Language.VIETNAMESE,
    Language.INDONESIAN,
    Language.MALAY,
    Language.TAGALOG,
    Language.THAI,
    Language.CHINESE,
    Language.JAPANESE,
    Language.KOREAN,
    Language.FRENCH,
    Language.GERMAN,
    Language.SPANISH,
    Language.PORTUGUESE,
    Language.RUSSIAN,
)
UNKNOWN = "und"
LANGUAGE_NAMES = {
    "en": "English",
    "vi": "Vietnamese",
    "id": "Indonesian",
    "ms": "Malay",
    "tl": "Tagalog",
    "th": "Thai",
    "zh": "Chinese",
    "ja": "Japanese",
    "ko": "Korean",
    "fr": "French",
    "de": "German",
    "es": "Spanish",
    "pt": "Portuguese",
    "ru": "Russian",
}


@lru_cache(maxsize=1)
def _detector():
    return LanguageDetectorBuilder.from_languages(*SUPPORTED).build()


@lru_cache(maxsize=256)
def detect_language(text: str) -> str:
    """ISO 639-1 code of ``text``'s language, or ``"und"`` when unsure or empty.

    Cached: one question passes through retrieval, extraction and answering.
    """
    sample = text[:4000].strip()
    if not sample:
        return UNKNOWN
    language = _detector().detect_language_of(sample)
    return language.iso_code_639_1.name.lower() if language else UNKNOWN


def language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code, code)


_FOLD_EXTRA = str.maketrans({"đ": "d", "Đ": "D", "ø": "o", "ł": "l", "ß": "ss"})


def fold(text: str) -> str:
    """Lower-case ``text`` and strip diacritics (Vietnamese ``đ`` becomes ``d``)."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_FOLD_EXTRA))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFC", stripped).casefold()


# Spellings of the same place across languages and styles, applied after folding.
# Lexical matching only: dense retrieval already bridges languages.
_NAME_ALIASES = [
    (re.compile(r"\b(?:tp\.?\s?hcm|tphcm|hcmc|ho chi minh|hcm|sai gon|saigon)\b"), "hochiminh"),
    (re.compile(r"\b(?:han quoc|korean)\b"), "korea"),
    (re.compile(r"\b(?:nhat ban|jepang|jepun|japanese)\b"), "japan"),
    (re.compile(r"\b(?:viet nam|vietnamese)\b"), "vietnam"),
    (re.compile(r"\b(?:ha noi)\b"), "hanoi"),
    (re.compile(r"\b(?:da nang)\b"), "danang"),
]
_TOKEN = re.compile(r"\w+")


def lexical_tokens(text: str) -> list[str]:
    """Folded word tokens with place-name variants unified: ``TP.HCM`` and ``Kota Ho Chi Minh`` share ``hochiminh``."""
    folded = fold(text)
    for pattern, canonical in _NAME_ALIASES:
        folded = pattern.sub(canonical, folded)
    return _TOKEN.findall(folded)


_WORD = re.compile(r"\w[\w-]*")


def _is_name(word: str) -> bool:
    return word[0].isupper() or word[0].isdigit()


def name_phrases(text: str) -> list[str]:
    """Runs of capitalised words and numbers: ``"Kapan Hai Phong ... Incheon?"`` gives ``["Hai Phong", "Incheon"]``.

    The first word is left out (capitalised anyway), and so is a possessive
    ``'s``.  Names are what carries over between languages, so they are what
    lexical matching and the "is this in the corpus at all?" check look at.
    """
    phrases: list[list[str]] = []
    previous_end = None
    for index, match in enumerate(_WORD.finditer(text.replace("'s ", " ").replace("’s ", " "))):
        word = match.group()
        if index == 0 or not _is_name(word):
            previous_end = None
            continue
        joined = previous_end is not None and text[previous_end:match.start()].strip() == ""
        if joined:
            phrases[-1].append(word)
        else:
            phrases.append([word])
        previous_end = match.end()
    return [" ".join(words) for words in phrases]


def name_tokens(text: str) -> set[str]:
    """Lexical tokens of the names and numbers in ``text`` (see :func:`name_phrases`)."""
    return set(lexical_tokens(" ".join(name_phrases(text))))


class NameVocabulary:
    """The names a corpus mentions, to tell a question about "Hai Phong and Incheon" from one it can answer.

    A name is known when the corpus contains the whole phrase (folded and
    alias-normalised, so ``Bắc Kạn`` matches ``Bac Kan``), or one of its longer
    words as a name: "Hanoi Union of Friendship Organizations" is known through
    "Hanoi" even though the articles name the union in Malay.
    """

    MIN_WORD = 4  # shorter name words ("Hai", "An") are too often ordinary words or parts of other names

    def __init__(self, texts: list[str]):
        self._folded = " " + " | ".join(" ".join(lexical_tokens(text)) for text in texts) + " "
        self._name_words = {token for text in texts for phrase in name_phrases(text) for token in lexical_tokens(phrase)}

    def knows(self, phrase: str) -> bool:
        tokens = lexical_tokens(phrase)
        if not tokens or f" {' '.join(tokens)} " in self._folded:
            return True
        return any(len(token) >= self.MIN_WORD and token in self._name_words for token in tokens)

    def unknown_share(self, question: str) -> float:
        """Share of the names in ``question`` that the corpus never mentions (0 when it names nothing)."""
        phrases = [p for p in name_phrases(question) if not p.isdigit()]
        return sum(not self.knows(p) for p in phrases) / len(phrases) if phrases else 0.0
