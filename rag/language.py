"""Language detection and accent-insensitive text folding.

Detection uses lingua, whose models ship inside the wheel (works offline);
Indonesian and Malay, which it mixes up, are told apart sentence by sentence
(see :func:`_indonesian_or_malay`).  Folding
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
    if language in (Language.INDONESIAN, Language.MALAY):
        return _indonesian_or_malay(sample)
    return language.iso_code_639_1.name.lower() if language else UNKNOWN


# Between Indonesian and Malay lingua's confidence for a long text saturates (its n-gram log-likelihoods add
# up), so one Indonesian-sounding quote in a Malay article decides it; each sentence window is judged on its own
# and the windows vote.  Users ask in Indonesian, not Malay, so a window counts as Malay only when lingua is
# MALAY_CONFIDENCE sure: a short question is one window.  Measured by `python -m bench language_id`.
MALAY_CONFIDENCE = 0.95
WINDOW_CHARS = 300
_SENTENCE_END = re.compile(r"(?<=[.!?\n])\s+")


@lru_cache(maxsize=1)
def _indonesian_or_malay_detector():
    return LanguageDetectorBuilder.from_languages(Language.INDONESIAN, Language.MALAY).build()


def _indonesian_or_malay(text: str) -> str:
    """``"ms"`` when most sentence windows of ``text`` are surely Malay, else ``"id"``."""
    detector = _indonesian_or_malay_detector()
    windows = _sentence_windows(text)
    malay = sum(detector.compute_language_confidence(w, Language.MALAY) >= MALAY_CONFIDENCE for w in windows)
    return "ms" if 2 * malay > len(windows) else "id"


def _sentence_windows(text: str) -> list[str]:
    """``text`` cut at sentence ends into pieces of about WINDOW_CHARS; a short tail joins the last piece."""
    windows: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(text):
        current = f"{current} {sentence}".strip()
        if len(current) >= WINDOW_CHARS:
            windows.append(current)
            current = ""
    if current and (len(current) >= WINDOW_CHARS // 3 or not windows):
        windows.append(current)
    elif current:
        windows[-1] = f"{windows[-1]} {current}"
    return windows


def language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code, code)


_FOLD_EXTRA = str.maketrans({"đ": "d", "Đ": "D", "ø": "o", "ł": "l", "ß": "ss"})


def fold(text: str) -> str:
    """Lower-case ``text`` and strip diacritics (Vietnamese ``đ`` becomes ``d``)."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_FOLD_EXTRA))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFC", stripped).casefold()


_TOKEN = re.compile(r"\w+")


def lexical_tokens(text: str) -> list[str]:
    """Folded word tokens, each place or country named as one token: ``TP.HCM`` and ``Kota Ho Chi Minh`` share one.

    The token is the gazetteer key written as a word (:func:`entity_token`).
    Lexical matching only: dense retrieval already bridges languages.
    """
    from .names import gazetteer_mentions  # names builds on this module's folding and name spans

    tokens: list[str] = []
    position = 0
    for mention in gazetteer_mentions(text):
        tokens.extend(_TOKEN.findall(fold(text[position:mention.start])))
        tokens.append(entity_token(mention.key))
        position = mention.end
    tokens.extend(_TOKEN.findall(fold(text[position:])))
    return tokens


def entity_token(key: str) -> str:
    """A gazetteer key as one word token: ``"loc:vn:ho-chi-minh"`` becomes ``"loc_vn_ho_chi_minh"``."""
    return re.sub(r"\W+", "_", key)


_WORD = re.compile(r"\w[\w-]*")


def _is_name(word: str) -> bool:
    return word[0].isupper() or word[0].isdigit()


def name_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the runs of capitalised words and numbers in ``text``.

    The first word is left out (capitalised anyway); a possessive ``'s`` and a
    line break end a run (a headline is no part of a name opening the next
    line).  Names are what carries over between languages, so they are what
    lexical matching and the "is this in the corpus at all?" check look at.
    """
    spans: list[tuple[int, int]] = []
    previous_end = None
    for index, match in enumerate(_WORD.finditer(text)):
        word = match.group()
        if index == 0 or not _is_name(word):
            previous_end = None
            continue
        gap = text[previous_end:match.start()] if previous_end is not None else None
        if gap is not None and gap.strip(" \t\u00a0") == "":
            spans[-1] = (spans[-1][0], match.end())
        else:
            spans.append((match.start(), match.end()))
        previous_end = match.end()
    return spans


def name_phrases(text: str) -> list[str]:
    """Runs of capitalised words and numbers: ``"Kapan Hai Phong ... Incheon?"`` gives ``["Hai Phong", "Incheon"]``."""
    return [text[start:end] for start, end in name_spans(text)]


def name_tokens(text: str) -> set[str]:
    """Lexical tokens of the names and numbers in ``text`` (see :func:`name_phrases`)."""
    return set(lexical_tokens(" ".join(name_phrases(text))))


# Capitalised words of titles and place types, not names: they are translated ("Wali Kota Daejeon" is
# "Thị trưởng Daejeon", "Korea Selatan" is "South Korea"), so an article about the name need not contain them.
TITLE_WORDS = frozenset(
    "city province prefecture district mayor governor president prime minister chairman deputy vice director "
    "council committee people party south north east west central "
    "kota wali walikota provinsi kabupaten dewan rakyat komite ketua wakil bapak presiden menteri perdana gubernur "
    "direktur kepala badan partai kamerad tetap anggota selatan utara timur barat tengah wilayah negeri bandar datuk naib "
    "pengerusi jawatankuasa encik seri dato komrad parti tn "
    "tinh huyen tich dong nhan truong tuong giam pho tp ubnd hdnd hlv".split()
)
