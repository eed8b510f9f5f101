"""What kind of answer a question asks for: an amount of money, a day or a date, a number, a population, an area, a role, a place.

Without a language model, nothing reads the chosen sentences to check that
they answer the question, and embedding similarity cannot tell "Seongnam is a
leading high-tech city" from the city's population: both are about Seongnam.
The answer type can: a "how much money" question is not answered by a
sentence without an amount, a "when" question not by one without a date, an
"on what date" question not by a bare year, and "who is the governor of X?"
not by a sentence that names no governor.  So
extractive answers prefer sentences of the expected type, and refuse when
none of the relevant sentences has it (see :mod:`rag.extractive`).

Cues and patterns cover the corpus languages (English, Vietnamese,
Indonesian, Malay) and are matched on folded text (lower case, no
diacritics), the same folding the lexical search uses.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from .language import fold
from .names import gazetteer_keys

MONEY = "money"
DAY = "day"
DATE = "date"
POPULATION = "population"
AREA = "area"
NUMBER = "number"
PLACE = "place"
# Types whose absence from every relevant sentence does not refuse: the gazetteer knows Vietnam's
# provinces, partner localities and countries, not every city a question may ask for.
SOFT_TYPES = frozenset({PLACE})
# Roles: "who is the governor of X?" is not answered by a sentence naming someone else's office.
ROLES = {
    "governor": ("governors?", "gubernur", "gabenor", "thong doc"),
    "mayor": ("mayors?", "wali ?kota", "datuk bandar", "thi truong"),
    "prime minister": ("prime minister", "perdana menteri", "thu tuong"),
    "ambassador": ("ambassadors?", "duta besar", "dubes", "dai su"),
}


def _words(*alternatives: str) -> re.Pattern:
    return re.compile(r"\b(?:" + "|".join(alternatives) + r")\b")


# Indonesian and Malay question words take the particle -kah ("Kapankah", "Berapakah", "Dimanakah").
_HOW_MUCH = _words("how much", "bao nhieu", "berapa(?:kah)?", "what is the (?:total )?(?:value|amount)")
_MONEY_NOUNS = _words(
    "money", "capital", "budget", "cost", "funding", "investment value",
    "von", "tien", "kinh phi", "ngan sach", "gia tri",
    "nilai", "anggaran", "modal", "dana", "biaya", "peruntukan",
)
_WHEN = _words(
    "when (?:did|does|do|was|were|will|is|are|has|have|had)", "(?:what|which) (?:year|date|day|month)s?",
    "khi nao", "bao gio", "(?:nam|ngay|thang) nao",
    "kapan(?:kah)?", "bila(?:kah)?", "(?:tahun|tanggal|bulan|tarikh) (?:berapa|bila)(?:kah)?",
)
# "lúc nào" (when) folds to the same letters as "lực nào" ("quyền lực nào": which power), so it is
# read with its accents, or folded only in a question written without any.
_AT_WHAT_TIME = re.compile(r"\blúc nào\b")
_AT_WHAT_TIME_UNACCENTED = _words("luc nao")
_WHICH_DAY = _words(
    "(?:what|which) (?:date|day)", "ngay (?:nao|bao nhieu|may)", "tanggal (?:berapa|brp)(?:kah)?", "tarikh (?:apa|bila)"
)
# "which province / prefecture / city / country …": the answer names a place the question does not,
# of the kind asked for ("which Japanese prefecture" is not answered by a Vietnamese province).
_PLACE_NOUNS = {
    "prefecture": "loc:jp:", "prefektur": "loc:jp:",
    "province": "loc:vn:", "tinh": "loc:vn:", "provinsi": "loc:vn:", "wilayah": "loc:",
    "city": "loc:", "cities": "loc:", "thanh pho": "loc:", "kota": "loc:",
    "locality": "loc:", "localities": "loc:", "dia phuong": "loc:", "daerah": "loc:",
    "country": "country:", "countries": "country:", "nuoc": "country:", "quoc gia": "country:",
    "negara": "country:", "negeri": "country:",
}
_PLACE_COUNTRIES = {
    "japanese": "jp", "nhat ban": "jp", "nhat": "jp", "jepang": "jp", "jepun": "jp",
    "korean": "kr", "south korean": "kr", "han quoc": "kr", "korea selatan": "kr", "korea": "kr",
    "vietnamese": "vn", "viet nam": "vn", "vietnam": "vn",
}
_NOUN = "|".join(sorted((re.escape(n) + ("s?" if n in {"prefecture", "province"} else "") for n in _PLACE_NOUNS),
                        key=len, reverse=True))
_COUNTRY = "|".join(sorted(map(re.escape, _PLACE_COUNTRIES), key=len, reverse=True))
_WHICH_PLACE = re.compile(
    rf"\b(?:which|what) (?:(?P<before>{_COUNTRY}) )?(?P<noun>{_NOUN})\b"
    rf"|\b(?<!ve )(?P<noun_vi>{_NOUN}) nao(?: (?:cua|o|tai) (?P<after_vi>{_COUNTRY}))?"  # not "vệ tinh nào" (which satellite)
    rf"|\b(?P<noun_id>{_NOUN})(?: (?P<after_id>{_COUNTRY}))? (?:apa|mana)(?:kah)?\b"
)
_WHO = _words("who", "whom", "siapa(?:kah)?", "ai")
_ROLE_CUES = {role: _words(*names) for role, names in ROLES.items()}
# "berpenduduk 74 juta jiwa" (has 74 million inhabitants): Indonesian and Malay derive the word with ber-.
_POPULATION = _words("population", "inhabitants", "dan so", "so dan", "(?:ber)?penduduk", "populasi")
_AREA = _words("area", "dien tich", "luas", "keluasan")
_HOW_MANY = _words(
    "how many", "how much", "how big", "how large", "how often", "number of", "percentage",
    "bao nhieu", "so may", "berapa(?:kah)?", "jumlah",
)

# What a sentence must contain to be an answer of each type.
_NUMBER = r"\d[\d.,]*"
_SCALES = "million|billion|trillion|trieu|ty|nghin ty|juta|miliar|bilion|triliun"
_CURRENCIES = "usd|vnd|dong|won|yen|euros?|ringgit|rupiah|dollars?|do la"
_MONEY_AMOUNT = re.compile(
    rf"(?:\$|\bus\$|\busd|\brp|\brm)\s?\d|{_NUMBER}\s*(?:{_SCALES}|{_CURRENCIES})\b"
)
_MONTHS = (
    "january|february|march|april|june|july|august|september|october|november|december|"
    "januari|februari|maret|mac|mei|juni|juli|agustus|ogos|oktober|disember|desember"
)
_DAY_MONTH = rf"\b\d{{1,2}}\s?[/.-]\s?\d{{1,2}}\b|\bngay \d{{1,2}}\b|\b\d{{1,2}} (?:{_MONTHS})\b|\b(?:{_MONTHS}) \d{{1,2}}\b"
_DAY = re.compile(_DAY_MONTH)
# A year: 1800-2099 alone, any year named as one ("tahun 971", "năm 1565"), or a span of years
# from 1000 on ("memerintah (1514-1530)": a reign).
_YEAR = r"(?:1\d{3}|20\d\d)"
_DATE = re.compile(
    rf"\b(?:1[89]\d\d|20\d\d)\b|\b(?:year|tahun|nam) \d{{3,4}}\b|\b{_YEAR}\s?[-–]\s?{_YEAR}\b"
    rf"|{_DAY_MONTH}|\bthang \d{{1,2}}\b|\b(?:{_MONTHS})\b"
)
_AREA_AMOUNT = re.compile(
    rf"{_NUMBER}\s*(?:ha|hectares?|hektar|km2|km²|m2|m²|square|acres?"
    r"|(?:kilo)?met(?:er|re)?s? persegi|km persegi|batu persegi|(?:kilo)?met vuong|km vuong|dam vuong)\b"
)
_COUNT = re.compile(
    r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|dozens?|hundreds?|thousands?|millions?|"
    "mot|hai|ba|bon|nam|sau|bay|tam|chin|muoi|tram|nghin|ngan|trieu|"
    r"satu|dua|tiga|empat|lima|enam|tujuh|delapan|lapan|sembilan|sepuluh|puluhan?|ratusan?|ribuan?|juta)\b"
)


def expected_type(question: str) -> str | None:
    """The kind of answer ``question`` asks for, or None when any sentence may answer it ("who", "which")."""
    q = fold(question)
    if _HOW_MUCH.search(q) and _MONEY_NOUNS.search(q):
        return MONEY
    if _WHICH_DAY.search(q):
        return DAY
    if _WHEN.search(q) or _asks_at_what_time(question, q):
        return DATE
    if _POPULATION.search(q) and not _WHO.search(q):  # "Siapakah … penduduk dunia …?" asks for a person
        return POPULATION
    if _AREA.search(q) and _HOW_MANY.search(q):
        return AREA
    if _HOW_MANY.search(q):
        return NUMBER
    if place_asked(question):
        return PLACE
    if _WHO.search(q):
        return next((role for role, cue in _ROLE_CUES.items() if cue.search(q)), None)
    return None


def _asks_at_what_time(question: str, folded: str) -> bool:
    if question.isascii():
        return bool(_AT_WHAT_TIME_UNACCENTED.search(folded))
    return bool(_AT_WHAT_TIME.search(unicodedata.normalize("NFC", question).lower()))


def roles_in(text: str) -> frozenset[str]:
    """The offices (:data:`ROLES`) ``text`` names, in any of the languages: "Wali Kota" and "thị trưởng" are "mayor"."""
    folded = fold(text)
    return frozenset(role for role, cue in _ROLE_CUES.items() if cue.search(folded))


def has_type(sentence: str, answer_type: str | None, question: str = "") -> bool:
    """Whether ``sentence`` contains an answer of ``answer_type`` (always true for untyped questions).

    Numbers ``question`` already gives do not count: "Hingga Jumat 12 Agustus 2005,
    berapakah korban diare …?" is not answered by a sentence whose only number is 2005.
    """
    s = _without_numbers_of(fold(question), fold(sentence))
    if answer_type == MONEY:
        return bool(_MONEY_AMOUNT.search(s))
    if answer_type == DAY:
        return bool(_DAY.search(s))
    if answer_type == DATE:
        return bool(_DATE.search(s))
    if answer_type == POPULATION:
        return bool(_POPULATION.search(s) and _COUNT.search(s))
    if answer_type == AREA:
        return bool(_AREA_AMOUNT.search(s))
    if answer_type == NUMBER:
        return bool(_COUNT.search(s))
    if answer_type in _ROLE_CUES:
        return bool(_ROLE_CUES[answer_type].search(s))
    if answer_type == PLACE:
        prefix = place_asked(question)
        return any(key.startswith(prefix) for key in gazetteer_keys(sentence) - _places_of(question))
    return True


@lru_cache(maxsize=64)
def _places_of(question: str) -> frozenset[str]:
    return gazetteer_keys(question)


@lru_cache(maxsize=64)
def place_asked(question: str) -> str:
    """The gazetteer key prefix of the place a "which …" question asks for ("loc:jp:" for a Japanese
    prefecture, "country:" for a country), "" when it asks for none."""
    match = _WHICH_PLACE.search(fold(question))
    if not match:
        return ""
    noun = match["noun"] or match["noun_vi"] or match["noun_id"]
    prefix = _PLACE_NOUNS.get(noun) or _PLACE_NOUNS[noun.removesuffix("s")]  # "prefectures", "provinces"
    country = match["before"] or match["after_vi"] or match["after_id"]
    return f"loc:{_PLACE_COUNTRIES[country]}:" if country and prefix.startswith("loc:") else prefix


_DIGITS = re.compile(r"\d+")


def _without_numbers_of(question: str, sentence: str) -> str:
    """``sentence`` with the digit runs that also occur in ``question`` blanked out."""
    given = set(_DIGITS.findall(question))
    return _DIGITS.sub(lambda m: " " if m.group() in given else m.group(), sentence) if given else sentence
