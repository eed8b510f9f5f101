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


_NAME_OR_NUMBER = re.compile(r"\b(?:[A-ZÀ-ỸĐ][\w-]+|\d[\d.,]*)")


def name_tokens(text: str) -> set[str]:
    """Lexical tokens of the names and numbers in ``text``: what carries over between languages.

    Names are words written with a capital, except the first word (capitalised anyway).
    """
    first = text.split(maxsplit=1)[0] if text.strip() else ""
    words = [w for w in _NAME_OR_NUMBER.findall(text) if w != first]
    return set(lexical_tokens(" ".join(words)))
