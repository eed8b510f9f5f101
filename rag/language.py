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

# Languages the corpus and users are expected to use; more can be added here.  Each Latin-script language costs
# a cold process ~0.17 s of CPU (lingua loads its n-gram models at the first detection, holding the GIL), and
# French, German, Spanish and Portuguese, which no article or question of the corpus uses, took 0.7 s of the
# 2.3 s a cold `rag search` needed (bench/README.md §12); lingua called 5 of 3,559 corpus texts one of them,
# wrongly in the two read.  Add a language here when its articles or users come.
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


# Indonesian and Malay are one language in two standards: most of their words are spelt alike
# ("kerja sama", "provinsi"/"wilayah" aside), so a question in one matches the other's sentences word
# for word, as it matches its own.  Other pairs share names and numbers only.
SHARED_WORDS = (frozenset({"id", "ms"}),)


def shares_words(a: str | None, b: str | None) -> bool:
    """Whether text in language ``a`` and text in ``b`` are written with the same words."""
    return a == b or any(a in pair and b in pair for pair in SHARED_WORDS)


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
    if unaccented_vietnamese(sample) or written_in_vietnamese(sample):
        return "vi"
    return lingua_language(sample)


def lingua_language(sample: str) -> str:
    """What lingua says ``sample`` is (Indonesian and Malay told apart by windows); ``"und"`` when unsure."""
    language = _detector().detect_language_of(sample)
    if language in (Language.INDONESIAN, Language.MALAY):
        return _indonesian_or_malay(sample)
    return language.iso_code_639_1.name.lower() if language else UNKNOWN


# Letters that, of the SUPPORTED languages, only Vietnamese writes (ă đ ĩ ũ ơ ư and the tone marks no other of them
# uses; not â ê ô, nor à á é ó ã õ, which French, Spanish or Portuguese write too).  lingua decides by such letters
# only when most words have them; otherwise it loads the n-gram models of every Latin-script language (about 1.5 s
# of CPU, holding the GIL, in each process's first detection).  When VIETNAMESE_WORDS of the words have one, the
# text is Vietnamese: lingua said so for every such text of the 4,506 questions, passages, articles and test
# strings `python -m bench parity` compares (bench/README.md §12; the largest share among texts it called something
# else was 0.31, a Vietnamese headline it took for Tagalog), and an English sentence naming "Đỗ Minh Tuấn" has 0.15.
_VIETNAMESE_ONLY = frozenset("ăđĩũơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ"
                             "ĂĐĨŨƠƯẠẢẤẦẨẪẬẮẰẲẴẶẸẺẼẾỀỂỄỆỈỊỌỎỐỒỔỖỘỚỜỞỠỢỤỦỨỪỬỮỰỲỴỶỸ")
VIETNAMESE_WORDS = 0.4
_LETTERS = re.compile(r"[^\W\d_]+")


PROSE_MIN_WORDS = 4
FOREIGN_CONFIDENCE = 0.05  # lingua's confidence in the asked language below which prose is written in another
_NOT_PROSE = re.compile(r"\[[^\]]*\]|【[^】]*】|\"[^\"]*\"|“[^”]*”|«[^»]*»")  # markers and quotations


def written_in(text: str, lang: str) -> bool | None:
    """Whether ``text`` is written in ``lang`` (or a language sharing its words); None when it has too few words
    of its own to tell.

    An answer quotes its sources' names, titles and sentences: "The mayor of Seongnam … is Bapak Shin Sang Jin,
    Walikota Kota Seongnam. This can be seen in the source [2] where it states: "…"" is English, yet lingua
    calls it Indonesian.  So only the words outside quotations that are not capitalised (the verbs and the
    function words) are read, and the text is foreign only when lingua all but rules ``lang`` out for them: on
    a few words it can name another language with little to go on ("head of the delegation was tịch tỉnh":
    Tagalog 0.55, English 0.09).
    """
    words = [w for w in _LETTERS.findall(_NOT_PROSE.sub(" ", text)) if not w[0].isupper()]
    languages = [language for language in SUPPORTED if shares_words(language.iso_code_639_1.name.lower(), lang)]
    if len(words) < PROSE_MIN_WORDS or not languages:  # too short, or asked in a language lingua is not given
        return None
    prose = " ".join(words)
    if shares_words(detect_language(prose), lang):
        return True
    return sum(_detector().compute_language_confidence(prose, language) for language in languages) >= FOREIGN_CONFIDENCE


def written_in_vietnamese(sample: str) -> bool:
    """At least VIETNAMESE_WORDS of the words of ``sample`` have a letter only Vietnamese writes (see above)."""
    words = _LETTERS.findall(sample)
    vietnamese = sum(not _VIETNAMESE_ONLY.isdisjoint(word) for word in words)
    return bool(words) and vietnamese >= VIETNAMESE_WORDS * len(words)


# Vietnamese typed without its diacritics, as people often chat, is no language lingua knows: it took 146 of 344
# such questions for Tagalog, French, English...  Every Vietnamese word is one syllable of a closed shape (an
# onset, an optional glide, a vowel nucleus, an optional final consonant), which Indonesian, Malay and English
# words rarely are; short English made only of such words ("do not go") is told by its function words.
_ONSET = r"(?:ngh|ng|nh|ch|gh|gi|kh|ph|qu|th|tr|[bcdghklmnprstvx])?"
_OPEN_RHYME = r"(?:a|e|i|o|u|y|ai|ao|au|ay|eo|ia|iu|oi|ua|ui|uu|uy|ieu|uoi|uou|yeu|oai|oay|oeo|uya|uyu|uay)"
_CLOSED_RHYME = r"(?:a|e|i|o|u|y|ie|uo|ye|ua|uye|oo)(?:c|ch|m|n|ng|nh|p|t)"
_SYLLABLE = re.compile(rf"{_ONSET}[ou]?(?:{_OPEN_RHYME}|{_CLOSED_RHYME})")
_LOWER_ASCII_WORD = re.compile(r"\b[a-z]+\b")
SYLLABLE_SHARE = 0.8  # 343 of 344 unaccented Vietnamese questions reach it; no English or Indonesian one did
ENGLISH_FUNCTION_WORDS_SHARE = 0.3  # at most 0.2 in those questions


def is_vietnamese_syllable(word: str) -> bool:
    """Whether folded ``word`` has the shape of one Vietnamese syllable ("nguyen", "hoa"; not "kota", "mayor")."""
    return bool(_SYLLABLE.fullmatch(word))


def unaccented_vietnamese(text: str) -> bool:
    """Whether ``text`` is Vietnamese written without diacritics: plain ASCII whose lower-case words are nearly all
    Vietnamese syllables and not English function words (``python -m bench language_id`` measures it)."""
    if not text.isascii():
        return False
    words = _LOWER_ASCII_WORD.findall(text)
    if len(words) < 3:
        return False
    if sum(is_vietnamese_syllable(word) for word in words) < SYLLABLE_SHARE * len(words):
        return False
    from bm25s.stopwords import STOPWORDS_EN  # the Lucene list; only loaded for text that looks Vietnamese

    return sum(word in STOPWORDS_EN for word in words) < ENGLISH_FUNCTION_WORDS_SHARE * len(words)


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
    return strip_diacritics(text).casefold()


def strip_diacritics(text: str) -> str:
    """``text`` without its diacritics, case kept: ``Hà Nội`` → ``Ha Noi``, as people often type it."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_FOLD_EXTRA))
    return unicodedata.normalize("NFC", "".join(ch for ch in decomposed if not unicodedata.combining(ch)))


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
