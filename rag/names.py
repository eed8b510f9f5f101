"""Names of places, countries, people and organisations, normalised across languages.

An Indonesian article writes ``Kota Ho Chi Minh`` and ``Korea Selatan``, a
Vietnamese one ``TP.HCM`` and ``Hàn Quốc``, the question ``Ho Chi Minh City``
and ``South Korea``: lexical matching needs one key per entity.  The
gazetteer comes from kept data, not hand lists: Vietnam's current provinces
(``vietnam-provinces``, after the 2025 merger) and the 63 before it (ISO
3166-2 through ``pycountry``: an article about Bắc Kạn is about Bắc Kạn, so a
merged-away province keeps its own key), country names in vi/id/ms/en from
CLDR (``babel``), Japanese prefectures and Korean provinces from ISO 3166-2,
and a small data file (``data/partner_localities.toml``) for the partner cities
and the spellings news uses that no library has.  Capitalised words the
gazetteer does not know become ``name:`` keys (see
:func:`rag.language.name_spans`), so ``Shin Sang Jin`` in an Indonesian article
and in an English question share one.

:class:`NameVocabulary` says which names a corpus mentions and which articles
mention them, from per-article data (:func:`article_vocabulary`) computed when
an article is indexed and queried from the store, so no process reads the
whole corpus to answer its first question.

All spellings are compiled into one regular expression shaped as a trie over
folded text, so a text is scanned once; it runs on every chunk at index time.
"""

from __future__ import annotations

import bisect
import re
import tomllib
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING

import pycountry
from babel import Locale
from vietnam_provinces import Province

from .language import TITLE_WORDS, fold, is_vietnamese_syllable, lexical_tokens, name_phrases, name_spans

if TYPE_CHECKING:
    from .stores import Store


@dataclass(frozen=True)
class NameMention:
    key: str  # "loc:vn:ho-chi-minh", "country:kr", "loc:kr:seongnam", "name:shin sang jin"
    surface: str  # the text as written
    start: int  # character offsets in the text given
    end: int
    kind: str  # "country" | "region" (CLDR) | "province" (Vietnam) | "locality" (partner localities) | "name" (other)


@dataclass(frozen=True)
class _Entry:
    key: str
    kind: str  # as NameMention.kind, or "" for a longer name that is no place ("Thái Bình Dương")
    accents: tuple[str, ...]  # the accents of each word of the spelling (see _accents)
    exact: str | None = None  # when set, the text must read exactly this (acronyms such as "AS", "Mỹ")


# The languages whose country names are taken from CLDR: the corpus's and the users'.
COUNTRY_NAME_LANGUAGES = ("vi", "id", "ms", "en")

# Short forms news uses that CLDR lists under another (official) name.  Exact ones are case- and
# accent-sensitive: "AS" and "Mỹ" are names only written so ("as" and "my" are ordinary words).
_COUNTRY_SHORT_FORMS = {
    "kr": ["Korea", "Republic of Korea", "Republik Korea", "Đại Hàn Dân Quốc", "Hàn"],
    "kp": ["Bắc Triều Tiên", "Korea Utara", "Democratic People's Republic of Korea"],
    "jp": ["Nhật", "Jepun", "Jepang"],
    "cn": ["China", "Tiongkok", "Tionghoa", "Trung Quốc"],
    "us": ["Hoa Kỳ", "Amerika", "America", "United States of America", "the US", "U.S."],
    "gb": ["Anh Quốc", "Vương quốc Anh", "Inggris", "Britain", "Great Britain", "Britania Raya"],
    "vn": ["Viet Nam", "Việt Nam", "Vietnam"],
    "la": ["Lao", "Laos"],
    "kh": ["Kampuchea", "Campuchia", "Kemboja"],
    "ph": ["Filipina", "Philippines"],
}
_COUNTRY_EXACT_FORMS = {"us": ["AS", "USA", "US", "Mỹ"], "gb": ["UK"], "kr": ["ROK"], "kp": ["DPRK", "CHDCND Triều Tiên"]}
# Adjectives and demonyms news uses for the countries the corpus is about.
_DEMONYMS = {
    "kr": ["Korean", "Koreans"],
    "jp": ["Japanese"],
    "vn": ["Vietnamese"],
    "cn": ["Chinese"],
    "id": ["Indonesian", "Indonesians"],
    "my": ["Malaysian", "Malaysians"],
    "th": ["Thai"],
    "la": ["Laotian"],
    "kh": ["Cambodian", "Cambodians"],
    "ph": ["Filipino", "Philippine"],
    "sg": ["Singaporean"],
    "us": ["American", "Americans"],
    "au": ["Australian"],
    "in": ["Indian"],
    "fr": ["French"],
    "de": ["German"],
    "ru": ["Russian"],
    "gb": ["British"],
}

# Vietnam: spellings written without spaces, and names news uses for a unit besides its own.
_VN_EXTRA_SPELLINGS = {
    "ho-chi-minh": ["Sài Gòn", "Saigon", "Hồ Chí Minh City", "HCM City"],
    "ha-noi": ["Hanoi"],
    "da-nang": ["Danang"],
    "hai-phong": ["Haiphong"],
    "hue": ["Thừa Thiên Huế", "Thua Thien Hue"],
}
_VN_EXACT_SPELLINGS = {"ho-chi-minh": ["HCM", "HCMC", "TPHCM", "TP.HCM", "TP. HCM", "TP HCM", "Tp.HCM", "Tp. HCM", "Tp HCM", "TP.Hồ Chí Minh"]}
# Renamed rather than merged in 2025: the same unit, so one key.
_VN_RENAMED = {"thua-thien-hue": "hue"}
# Longer names that contain a place's name but are no place: the Pacific and Indian Oceans.
_NOT_PLACES = ("Thái Bình Dương", "Ấn Độ Dương")

# Place-type words around a place name ("tỉnh Thanh Hóa", "Kota Seongnam", "Yamanashi Prefecture"):
# taken into the mention so they do not linger as names of their own.
_PLACE_PREFIXES = (
    "tinh", "thanh pho", "tp", "tp.", "kota", "provinsi", "prefektur", "wilayah", "bandar raya", "bandar", "negeri",
    "daerah", "city of", "province of", "prefecture of", "wali kota", "walikota",
)
_PLACE_SUFFIXES = ("province", "city", "prefecture", "metropolitan city", "special city")

# A one-word spelling this short ("Mie", "Nara", "Nga", "Đức") is a name's part as often as a place:
# it counts only when no other capitalised word touches it ("Mie Ayam", "Nguyễn Văn Đức" are not places)
# and no word addressing a person comes before it ("ông Đức", "bà Nga", "Pak Nara").
_SHORT = 4
_PERSON_ADDRESS = frozenset("ong ba anh chi em co chu bac mr mrs ms dr pak bu bapak ibu tn encik puan".split())


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", fold(name)).strip("-")


def _spelling_form(text: str) -> str:
    """How a spelling is looked up: folded, hyphens as spaces, single spaces."""
    return " ".join(fold(text).translate(_DASHES).split())


_DASHES = str.maketrans({"-": " ", "–": " ", "—": " ", "\u00a0": " ", "\t": " "})


def _vietnam_entries() -> dict[str, list[str]]:
    """key -> spellings for Vietnam's current 34 units and the legacy 63 provinces."""
    units: dict[str, list[str]] = {}
    for province in Province.iter_all():
        name = re.sub(r"^(Thành phố|Tỉnh)\s+", "", province.name)
        units.setdefault(f"loc:vn:{province.codename.replace('_', '-')}", []).append(name)
    for subdivision in pycountry.subdivisions.get(country_code="VN"):
        slug = _slug(subdivision.name)
        units.setdefault(f"loc:vn:{_VN_RENAMED.get(slug, slug)}", []).append(subdivision.name)
    for slug, spellings in _VN_EXTRA_SPELLINGS.items():
        units[f"loc:vn:{slug}"].extend(spellings)
    return units


def _partner_entries() -> dict[str, list[str]]:
    """key -> spellings for Japanese prefectures, Korean provinces (ISO 3166-2) and the cities of the data file."""
    units: dict[str, list[str]] = {}
    for country in ("JP", "KR"):
        for subdivision in pycountry.subdivisions.get(country_code=country):
            base = subdivision.name.split("-")[0]
            units.setdefault(f"loc:{country.lower()}:{_slug(base)}", []).extend([subdivision.name, base])
    table = tomllib.loads(resources.files("rag").joinpath("data/partner_localities.toml").read_text("utf-8"))
    for country, places in table.items():
        for slug, spellings in places.items():
            units.setdefault(f"loc:{country}:{slug}", []).extend(spellings)
    return units


def _country_entries() -> dict[str, list[str]]:
    """key -> spellings: CLDR names in vi/id/ms/en, pycountry's English names, short forms and demonyms."""
    codes = {country.alpha_2 for country in pycountry.countries}
    units: dict[str, list[str]] = {}
    for language in COUNTRY_NAME_LANGUAGES:
        for code, name in Locale(language).territories.items():
            if code in codes:
                units.setdefault(f"country:{code.lower()}", []).append(name)
    for country in pycountry.countries:
        names = [getattr(country, field, None) for field in ("name", "common_name")]
        units.setdefault(f"country:{country.alpha_2.lower()}", []).extend(n for n in names if n and "," not in n)
    for table in (_COUNTRY_SHORT_FORMS, _DEMONYMS):
        for code, spellings in table.items():
            units[f"country:{code}"].extend(spellings)
    return units


# CLDR territories that are no region a text can be about: the world, organisations, pseudo-locales.
_NOT_REGIONS = frozenset({"001", "UN", "EZ", "XA", "XB", "ZZ"})


def _region_entries(countries: dict[str, list[str]]) -> dict[str, list[str]]:
    """key -> spellings for CLDR's other territories (continents, "Đông Nam Á", "Uni Eropa") in vi/id/ms/en.

    Without them "South America", "Mỹ Latinh" and "Amerika Latin" were read as
    the United States (the longest spelling found was a country's), and Europe
    was no name at all.  A spelling a country already has stays the country's:
    "Amerika" (CLDR's Indonesian for the Americas) is what Indonesian news calls
    the United States.
    """
    taken = {_spelling_form(spelling) for spellings in countries.values() for spelling in spellings}
    codes = {country.alpha_2 for country in pycountry.countries} | _NOT_REGIONS
    units: dict[str, list[str]] = {}
    for language in COUNTRY_NAME_LANGUAGES:
        for code, name in Locale(language).territories.items():
            if code not in codes and _spelling_form(name) not in taken:
                units.setdefault(f"region:{code.lower()}", []).append(name)
    return units


# Spellings news uses besides CLDR's, matched as written: Vietnamese writes "châu" in lower case.
_REGION_EXACT_FORMS = {
    "eu": ["EU", "Liên minh châu Âu", "Liên minh Châu Âu"],
    "419": ["Mỹ Latinh", "Mỹ La-tinh", "châu Mỹ Latinh"],
}


def _region_exact_forms(regions: dict[str, list[str]]) -> dict[str, list[str]]:
    """key -> the exact spellings of :data:`_REGION_EXACT_FORMS` and each "Châu …" written "châu …"."""
    forms = {f"region:{code}": list(spellings) for code, spellings in _REGION_EXACT_FORMS.items()}
    for key, spellings in regions.items():
        lowered = ["châu" + spelling[4:] for spelling in spellings if spelling.startswith("Châu ")]
        forms.setdefault(key, []).extend(lowered)
    return forms


@dataclass(frozen=True)
class _Gazetteer:
    pattern: re.Pattern
    entries: dict[str, list[_Entry]]  # spelling form -> the entries written so


@lru_cache(maxsize=1)
def _gazetteer() -> _Gazetteer:
    entries: dict[str, list[_Entry]] = {}

    def add(spelling: str, key: str, kind: str, exact: bool = False) -> None:
        form = _spelling_form(spelling)
        entry = _Entry(key, kind, _accents(spelling), spelling if exact else None)
        if form and entry not in entries.setdefault(form, []):
            entries[form].append(entry)

    countries = _country_entries()
    regions = _region_entries(countries)
    for kind, units in (("province", _vietnam_entries()), ("locality", _partner_entries()), ("country", countries),
                        ("region", regions)):
        for key, spellings in units.items():
            for spelling in spellings:
                add(spelling, key, kind)
    for slug, spellings in _VN_EXACT_SPELLINGS.items():
        for spelling in spellings:
            add(spelling, f"loc:vn:{slug}", "province", exact=True)
    for code, spellings in _COUNTRY_EXACT_FORMS.items():
        for spelling in spellings:
            add(spelling, f"country:{code}", "country", exact=True)
    for key, spellings in _region_exact_forms(regions).items():
        for spelling in spellings:
            add(spelling, key, "region", exact=True)
    for spelling in _NOT_PLACES:
        add(spelling, "", "")
    core = _trie_regex(entries)
    prefixes = "|".join(_word_regex(p) for p in sorted(_PLACE_PREFIXES, key=len, reverse=True))
    suffixes = "|".join(_word_regex(s.lstrip("-")) for s in sorted(_PLACE_SUFFIXES, key=len, reverse=True))
    pattern = re.compile(
        rf"(?<!\w)(?:(?P<pre>(?:{prefixes}) *))?(?P<core>{core})(?!\w)(?P<suf> +(?:{suffixes})(?!\w))?"
    )
    return _Gazetteer(pattern, entries)


def _word_regex(text: str) -> str:
    return " +".join(re.escape(word) for word in _spelling_form(text).split(" "))


def _trie_regex(words) -> str:
    """One regex matching any of ``words``, shaped as a trie so matching does not try them one by one.

    Longer continuations come before a word's end, so the longest spelling wins.
    """
    trie: dict = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict) -> str:
        ends = "" in node
        branches = [(" +" if ch == " " else re.escape(ch)) + emit(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if ends:
            return f"(?:{body})?"
        return body

    return emit(trie)


def _fold_char(ch: str) -> str:
    folded = fold(ch).translate(_DASHES)
    return folded if len(folded) == 1 else ch


# Folding that keeps every character in place, so offsets in the folded text are offsets in the original.
_SAME_LENGTH_FOLD = {
    code: _fold_char(chr(code))
    for block in (range(0x41, 0x5B), range(0xA0, 0x250), range(0x1E00, 0x1F00), range(0x2010, 0x2016))
    for code in block
    if _fold_char(chr(code)) != chr(code)
}
_SAME_LENGTH_FOLD.update({ord("-"): " ", ord("\t"): " "})


def _searchable(text: str) -> tuple[str, list[int] | None]:
    """``text`` folded for matching, and the original offset of each folded character when they differ."""
    if unicodedata.is_normalized("NFC", text):
        return text.translate(_SAME_LENGTH_FOLD), None
    parts, offsets = [], []
    for index, ch in enumerate(text):
        folded = fold(ch).translate(_DASHES)
        parts.append(folded)
        offsets.extend([index] * len(folded))
    offsets.append(len(text))
    return "".join(parts), offsets


def _capitalised(surface: str) -> bool:
    """Whether every word of ``surface`` starts with a capital; after a hyphen it need not ("Gyeonggi-do")."""
    return all(word[0].isupper() or word[0].isdigit() for word in surface.split() if word[0].isalnum())


def _part_of_a_name(text: str, start: int, end: int, entry: _Entry) -> bool:
    """Whether the word at ``start:end`` touches another capitalised word or follows a person's title.

    A spelling that is only a name when written exactly so ("Mỹ") may be followed by one:
    "Tổng thống Mỹ Donald Trump".
    """
    before = re.search(r"(\w+)\.?[ \-]$", text[max(0, start - 40):start])
    after = re.match(r"[ \-](\w+)", text[end:end + 40])
    if before and (before.group(1)[0].isupper() or fold(before.group(1)) in _PERSON_ADDRESS):
        return True
    return entry.exact is None and bool(after and after.group(1)[0].isupper())


def gazetteer_mentions(text: str) -> list[NameMention]:
    """The mentions of gazetteer entries (places and countries) in ``text``, in order."""
    gazetteer = _gazetteer()
    searchable, offsets = _searchable(text)
    casual = not any(ch.isupper() for ch in text)  # typed all in lower case, as chat often is

    def original(position: int) -> int:
        return offsets[position] if offsets else position

    mentions = []
    for match in gazetteer.pattern.finditer(searchable):
        core_start, core_end = original(match.start("core")), original(match.end("core"))
        core = text[core_start:core_end]
        entry = _pick_entry(gazetteer.entries[" ".join(match.group("core").split())], core, casual)
        if entry is None or not entry.kind:
            continue
        start, end = core_start, core_end
        if entry.kind not in ("country", "region"):  # no place-type words around a country or a continent
            start, end = original(match.start()), original(match.end())
        if len(core) <= _SHORT and start == core_start and end == core_end and _part_of_a_name(text, start, end, entry):
            continue
        mentions.append(NameMention(entry.key, text[start:end], start, end, entry.kind))
    return mentions


def _pick_entry(entries: list[_Entry], core: str, casual: bool = False) -> _Entry | None:
    """The entry ``core`` (as written) stands for: an exact spelling if it is one, else a capitalised name.

    Written with accents, the text must carry the spelling's: Vietnamese tells
    ``Bỉ`` (Belgium) from ``Bí`` (as in ``Tổng Bí thư``) and ``Nhật`` from
    ``Nhất`` only by them.  Unaccented text may stand for any spelling.  In
    ``casual`` text (no capital anywhere) a name need not be capitalised when
    it cannot be an ordinary word (see :func:`_unmistakable`).
    """
    exact = [e for e in entries if e.exact is not None and (e.exact == core or casual and _unmistakable_exact(e, core))]
    if exact:
        return exact[0]
    if casual and not _capitalised(core):
        if not _unmistakable(core):
            return None
    elif not _capitalised(core) or _acronym(core):
        return None
    accents = _accents(core)
    unaccented = not any(accents)
    loose = [e for e in entries if e.exact is None and (unaccented or e.accents == accents)]
    # One spelling, several entities ("Georgia"): the first listed (Vietnam, then partners, then countries) wins.
    return loose[0] if loose else None


def _unmistakable(core: str) -> bool:
    """Whether ``core`` written in lower case is still a name: two words or more ("ha noi", "korea selatan"), or
    one long word that is no Vietnamese syllable ("yamanashi", not "nhat" or "duc", which are also words)."""
    return len(core.split()) > 1 or (len(core) > _SHORT and not is_vietnamese_syllable(fold(core)))


def _unmistakable_exact(entry: _Entry, core: str) -> bool:
    """An exact spelling typed in lower case counts when it is no word ("hcm", "tphcm"; not "as", "us" or "my")."""
    folded = fold(core)
    return fold(entry.exact) == folded and len(folded) > 2 and not is_vietnamese_syllable(folded)


def _acronym(word: str) -> bool:
    """A short word in capitals ("BI", "SEC") is an acronym: a place only when listed so ("AS", "UK")."""
    return len(word) <= _SHORT and word.isupper()


def _accents(text: str) -> tuple[str, ...]:
    """Each word's accents, in any order: old- and new-style tone placement (``Hoà``/``Hòa``) agree."""
    words = text.casefold().translate(_DASHES).split()
    return tuple(
        "".join(sorted(ch for ch in unicodedata.normalize("NFD", word) if unicodedata.combining(ch) or ch == "đ"))
        for word in words
    )


_WORD = re.compile(r"\w[\w-]*")


def _name_mentions(text: str, taken: list[tuple[int, int]]) -> list[NameMention]:
    """Capitalised runs outside the gazetteer mentions, split at title words, as ``name:`` keys."""
    lower_words = {word for word in _WORD.findall(text) if word[0].islower()}
    mentions = []
    for start, end in name_spans(text):
        group: list[re.Match] = []
        for word in [*_WORD.finditer(text, start, end), None]:
            if word is not None and not _is_title_or_number(word.group()) and not _inside(word.start(), taken):
                group.append(word)
                continue
            group = _without_ordinary_words(text, group, lower_words)
            if group:
                first, last = group[0].start(), group[-1].end()
                key = "name:" + " ".join(_fold_word(w.group()).replace("-", " ") for w in group)
                mentions.append(NameMention(" ".join(key.split()), text[first:last], first, last, "name"))
            group = []
    return mentions


def _without_ordinary_words(text: str, group: list[re.Match], lower_words: set[str]) -> list[re.Match]:
    """``group`` less the ordinary words that are capitalised only by position or convention.

    A sentence's first word, when the text also writes it in lower case
    ("Berikut Prabowo Subianto"), is no part of the name.  A lone word is
    ordinary when it opens a sentence, when the text also writes it in lower
    case, or when it is a Vietnamese syllable followed by a lower-case one:
    Vietnamese capitalises every syllable of a name but only the first of a
    title or institution ("Chủ tịch", "Tổng thống", "Công an").
    """
    if len(group) > 1 and _opens_sentence(text, group[0].start()) and group[0].group().lower() in lower_words:
        group = group[1:]
    if len(group) == 1 and _ordinary_word(text, group[0], lower_words):
        return []
    return group


@lru_cache(maxsize=1)
def _calendar_and_currency_words() -> frozenset[str]:
    """Capitalised words that name no one: days, months (CLDR, in the corpus's languages) and currencies."""
    words = set()
    for language in COUNTRY_NAME_LANGUAGES:
        locale = Locale(language)
        for table in (locale.days, locale.months):
            for width in ("wide", "abbreviated"):
                words.update(w for name in table["format"][width].values() for w in _spelling_form(name).split())
        words.update(fold(symbol) for symbol in locale.currency_symbols.values())
    words.update(fold(currency.alpha_3) for currency in pycountry.currencies)
    return frozenset(words)


@lru_cache(maxsize=1 << 16)
def _fold_word(word: str) -> str:
    """One word folded; cached, as the same words recur in every chunk."""
    return fold(word)


def _is_title_or_number(word: str) -> bool:
    folded = _fold_word(word)
    numeric = not any(ch.isalpha() for ch in word)  # "2023", "2023-2024", "10-3"
    return numeric or len(word) == 1 or folded in TITLE_WORDS or folded in _calendar_and_currency_words()


def _inside(position: int, spans: list[tuple[int, int]]) -> bool:
    """Whether ``position`` falls in one of ``spans`` (in order, not overlapping)."""
    index = bisect.bisect_right(spans, (position, float("inf"))) - 1
    return index >= 0 and position < spans[index][1]


def _ordinary_word(text: str, word: re.Match, lower_words: set[str]) -> bool:
    if _opens_sentence(text, word.start()) or word.group().lower() in lower_words:
        return True
    next_word = re.match(r" (\w)", text[word.end():word.end() + 2])
    return not word.group().isascii() and bool(next_word and next_word.group(1).islower())


def _opens_sentence(text: str, start: int) -> bool:
    """Whether the word at ``start`` begins a sentence or line, where any word is capitalised."""
    before = text[:start].rstrip(" \t\"'“‘(")
    return not before or before[-1] in ".!?:;\n"


def find_names(text: str) -> list[NameMention]:
    """Every mention in ``text``, in order: gazetteer entries (longest spelling first) and other names, no overlaps."""
    places = gazetteer_mentions(text)
    names = _name_mentions(text, [(m.start, m.end) for m in places])
    return sorted(places + names, key=lambda m: m.start)


def name_keys(text: str) -> frozenset[str]:
    """The keys of :func:`find_names`."""
    return frozenset(m.key for m in find_names(text))


def gazetteer_keys(text: str) -> frozenset[str]:
    """Only the gazetteer keys of ``text`` (places and countries, no ``name:`` keys)."""
    return frozenset(m.key for m in gazetteer_mentions(text))


def country_of(key: str) -> str | None:
    """The country key a gazetteer key lies in: ``loc:kr:seongnam`` and ``country:kr`` both give ``country:kr``."""
    parts = key.split(":")
    if parts[0] == "country":
        return key
    return f"country:{parts[1]}" if parts[0] == "loc" and len(parts) > 2 else None


def about_another_place(asked: frozenset[str], named: frozenset[str], *, by_part: bool = False) -> bool:
    """Whether a text naming the places ``named`` speaks of somewhere else than a question naming ``asked``.

    It does when it leaves out a place the question names and names one the
    question does not: "Japan upgraded its ties with Vietnam in 2023" for a
    question about Korea and Vietnam.  A place inside an asked country covers
    it (Seongnam for "Korea"), and the country of an asked place is no other
    place (Vietnam beside "Hanoi"), so "Thanh Hoa and Seongnam signed …" is
    about "Vietnam and Korea".  A text naming no place is about nothing else:
    the answering sentence often says only "the city" or "he".  Regions
    ("châu Âu") count neither way: which countries lie in them is not known
    here, so a sentence about Europe may well be about the France asked of.

    ``by_part``: the question asks about its places one by one ("… in Germany,
    and which Japanese group … in Tokyo?"), so a text leaves the question only
    when it names none of them.
    """
    asked, named = _without_regions(asked), _without_regions(named)
    asked_countries = {country_of(key) for key in asked}

    def elsewhere(key: str) -> bool:
        return key not in asked and key not in asked_countries and not (
            key.startswith("loc:") and country_of(key) in asked)

    left = not any(_covers(named, key) for key in asked) if by_part else not _names_every_place(asked, named)
    return left and any(elsewhere(key) for key in named)


def _names_every_place(asked: frozenset[str], named: frozenset[str]) -> bool:
    """Whether a text naming ``named`` names every place of ``asked``, regions aside (see about_another_place)."""
    return all(_covers(_without_regions(named), key) for key in _without_regions(asked))


def _covers(named: frozenset[str], key: str) -> bool:
    return key in named or (key.startswith("country:") and any(country_of(n) == key for n in named))


def sentences_elsewhere(question: str, sentences: Sequence[str], passages: Sequence[str] = ()) -> list[bool]:
    """Per sentence, whether it is about another place than ``question`` (:func:`about_another_place`).

    All False when the question names no place, and when every sentence is
    about another place: then the passages may not answer at all, which is for
    the similarity floors to say, not for this check.  When none of
    ``passages`` (the texts the sentences come from) names every place of the
    question, its answer lies in several articles, each about some of the
    places ("… Korea, and … Japan?"): a sentence is then only about another
    place when it names none of the question's.
    """
    asked = gazetteer_keys(question)
    if not asked:
        return [False] * len(sentences)
    by_part = bool(passages) and not any(_names_every_place(asked, gazetteer_keys(text)) for text in passages)
    elsewhere = [about_another_place(asked, gazetteer_keys(sentence), by_part=by_part) for sentence in sentences]
    return [False] * len(sentences) if all(elsewhere) else elsewhere


def _without_regions(keys: frozenset[str]) -> frozenset[str]:
    return frozenset(key for key in keys if not key.startswith("region:"))


@dataclass(frozen=True)
class ArticleVocabulary:
    """What :class:`NameVocabulary` needs of one article (its title included), computed when it is indexed."""

    tokens: tuple[str, ...]  # its lexical tokens in order: a phrase is mentioned when its tokens appear in a row
    name_words: frozenset[str]  # the lexical tokens of its name phrases

    @property
    def words(self) -> frozenset[str]:
        return frozenset(self.tokens)


def article_vocabulary(title: str, text: str) -> ArticleVocabulary:
    titled = f"{title}\n{text}"
    return ArticleVocabulary(tuple(lexical_tokens(titled)),
                             frozenset(token for phrase in name_phrases(titled) for token in lexical_tokens(phrase)))


class NameVocabulary:
    """The names a corpus mentions, and which articles mention them, asked of one version of the index.

    A name is known when the corpus contains the whole phrase (folded and
    alias-normalised, so ``Bắc Kạn`` matches ``Bac Kan``), or one of its longer
    words as a name: "Hanoi Union of Friendship Organizations" is known through
    "Hanoi" even though the articles name the union in Malay.  That tells a
    question about "Hai Phong and Incheon" from one the corpus can answer;
    :meth:`articles_naming` tells which articles can answer it.

    The store answers from the per-article data written at index time
    (:meth:`rag.stores.base.Store.word_spread` and the like): building this from
    every article's text took each process 6.8 s on its first question at 1,000
    articles (bench/README.md §12).
    """

    MIN_WORD = 4  # shorter name words ("Hai", "An") are too often ordinary words or parts of other names
    GENERIC_SHARE = 0.5  # a word in more of the articles than this (the country they report on) picks none out

    def __init__(self, store: Store):
        self._store = store

    def knows(self, phrase: str) -> bool:
        tokens = lexical_tokens(phrase)
        if not tokens:
            return True
        spread = self._store.word_spread(tokens)
        if any(len(token) >= self.MIN_WORD and spread.get(token, (0, 0))[1] for token in tokens):
            return True
        if not all(spread.get(token, (0, 0))[0] for token in tokens):
            return False
        rarest = min(tokens, key=lambda token: spread[token][0])
        return len(tokens) == 1 or self._store.mentions_phrase(tokens, rarest)

    def unknown_names(self, question: str) -> tuple[int, int]:
        """How many of the names in ``question`` the corpus never mentions, and how many names it has."""
        phrases = [p for p in name_phrases(question) if not p.isdigit()]
        return sum(not self.knows(p) for p in phrases), len(phrases)

    def articles_naming(self, question: str) -> set[str] | None:
        """The articles that mention every name of ``question`` that picks out articles; None when it has none."""
        names = self._names(question)
        if not names:
            return None
        words = self._store.articles_with_words(set().union(*names))
        return {doc_id for doc_id, found in words.items() if all(found & name for name in names)}

    def mention_none(self, question: str, doc_ids: list[str]) -> bool:
        """Whether the articles ``doc_ids`` mention none of the names of ``question`` that pick out articles."""
        names = self._names(question)
        return bool(names) and not self._store.articles_with_words(set().union(*names), doc_ids)

    def _names(self, question: str) -> list[set[str]]:
        """Each name of ``question`` as the words that would show an article mentions it.

        Those are the words some articles contain and most do not, without
        title words ("Wali Kota Daejeon" counts through "Daejeon") or numbers;
        an article mentions the name when it contains one of them.
        """
        phrases = [[t for t in lexical_tokens(phrase) if len(t) >= self.MIN_WORD and t not in TITLE_WORDS
                    and not t.isdigit()] for phrase in name_phrases(question)]
        spread = self._store.word_spread({token for tokens in phrases for token in tokens})
        most = self.GENERIC_SHARE * self._store.manifest.articles
        names = ({t for t in tokens if 0 < spread.get(t, (0, 0))[0] <= most} for tokens in phrases)
        return [name for name in names if name]
