"""Reading articles: files in, clean :class:`Article` records out.

Scraped news pages carry clutter that hurts retrieval and looks bad in
citations: navigation, comment counters, "related articles" lists, photo
captions repeated as headings.  This module removes it, normalises Unicode to
NFC (Vietnamese text often arrives decomposed), and pulls out the title, the
source URL and a date.

Reading is split in two steps so that re-indexing stays cheap on big corpora:
:func:`iter_sources` only reads bytes and fingerprints them; :func:`parse_source`
(decoding, cleaning, language detection) runs only for sources whose
fingerprint changed since the last build.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bs4 import BeautifulSoup
from charset_normalizer import from_bytes

from .errors import UserError
from .language import detect_language

# Bump when cleaning rules, or what chunking embeds, change: every article is then re-parsed and re-embedded.
# 2: a title that only repeats the article's opening is no longer embedded with each chunk.
PARSER_VERSION = "2"
ARTICLE_SUFFIXES = (".txt", ".md", ".html", ".htm")
JSONL_SUFFIXES = (".jsonl",)


class CorpusError(UserError):
    """The corpus as a whole cannot be read (missing folder, wrong kind of path)."""


class ArticleError(UserError):
    """One article cannot be used; the message names the file and what to do.

    ``doc_id`` is set when the article is known, so that an article whose file
    turned bad keeps its previously indexed version instead of being deleted.
    """

    def __init__(self, message: str, doc_id: str | None = None):
        super().__init__(message)
        self.doc_id = doc_id


@dataclass(frozen=True)
class Source:
    """Raw bytes of one article, before any parsing."""

    doc_id: str
    location: str  # file path, with ":LINE" for JSONL records
    kind: str  # "txt", "md", "html" or "jsonl"
    raw: bytes

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(PARSER_VERSION.encode() + b"\0" + self.raw).hexdigest()


@dataclass(frozen=True)
class Article:
    """A cleaned article, ready for chunking."""

    doc_id: str
    title: str
    text: str  # paragraphs separated by blank lines
    lang: str  # ISO 639-1, or "und"
    url: str | None
    date: str | None  # ISO date (YYYY-MM-DD) when the page showed one
    location: str
    fingerprint: str
    source: str | None = None  # the site it comes from (``kompas.com``), what search filters by source match


# --------------------------------------------------------------------- sources


def iter_sources(path: Path, max_bytes: int) -> Iterator[Source | ArticleError]:
    """Yield every article source under ``path`` (a folder, a file or a JSONL file).

    Problems with single files are yielded as :class:`ArticleError` so that one
    bad file never stops the others.
    """
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"corpus not found: {path} (create it, or pass --corpus / set RAG_CORPUS)")
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    root = path.resolve() if path.is_dir() else None
    # An article file's id is its name, which the folder keeps unique: a JSONL record claiming that id
    # is the duplicate, wherever it sorts (else a bulk file could replace an article by reusing its id).
    file_ids = {file.stem: file for file in reversed(files) if file.suffix.lower() in ARTICLE_SUFFIXES}
    seen: dict[str, str] = {}
    for file in files:
        if file.name.startswith("."):
            continue
        suffix = file.suffix.lower()
        if root is not None and not file.resolve().is_relative_to(root):
            produced = [ArticleError(f"{file}: links to {file.resolve()}, outside the corpus folder; not read "
                                     "(copy the file in instead)", doc_id=file.stem)]
        elif suffix in JSONL_SUFFIXES:
            produced = _jsonl_sources(file, max_bytes)
        elif suffix in ARTICLE_SUFFIXES:
            produced = [_file_source(file, max_bytes)]
        elif path.is_file():
            produced = [ArticleError(f"{file}: unsupported file type {suffix!r}; use .txt, .md, .html or .jsonl")]
        else:
            continue  # unrelated files in the corpus folder are not articles
        for item in produced:
            if isinstance(item, Source):
                owner = file_ids.get(item.doc_id) if item.kind == "jsonl" else None
                if owner is not None:
                    item = ArticleError(f"{item.location}: duplicate article id {item.doc_id!r} (the id of "
                                        f"{owner}); give the record another id")
                elif item.doc_id in seen:
                    item = ArticleError(
                        f"{item.location}: duplicate article id {item.doc_id!r} "
                        f"(already read from {seen[item.doc_id]}); rename one of them"
                    )
                else:
                    seen[item.doc_id] = item.location
            yield item


def _file_source(file: Path, max_bytes: int) -> Source | ArticleError:
    try:
        size = file.stat().st_size
        if size > max_bytes:
            return ArticleError(
                f"{file}: too large ({size / 1e6:.1f} MB > {max_bytes / 1e6:.1f} MB); "
                "split it into articles or raise max_article_bytes",
                doc_id=file.stem,
            )
        raw = file.read_bytes()
    except OSError as exc:
        return ArticleError(f"{file}: cannot be read ({exc.strerror or exc}); check its permissions", file.stem)
    kind = "html" if file.suffix.lower() in (".html", ".htm") else file.suffix.lower().lstrip(".")
    return Source(doc_id=file.stem, location=str(file), kind=kind, raw=raw)


def _jsonl_sources(file: Path, max_bytes: int) -> Iterator[Source | ArticleError]:
    try:
        handle = file.open("rb")
    except OSError as exc:
        yield ArticleError(f"{file}: cannot be read ({exc.strerror or exc}); check its permissions")
        return
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            location = f"{file}:{number}"
            if len(line) > max_bytes:
                yield ArticleError(f"{location}: record too large ({len(line) / 1e6:.1f} MB)")
                continue
            try:
                record = json.loads(line)
                doc_id = str(record["id"]).strip()
            except (ValueError, KeyError, TypeError):
                yield ArticleError(f'{location}: not a JSON record with an "id"; fix or remove the line')
                continue
            if not doc_id:
                yield ArticleError(f'{location}: empty "id"')
                continue
            yield Source(doc_id=doc_id, location=location, kind="jsonl", raw=line)


# --------------------------------------------------------------------- parsing


def parse_source(source: Source) -> Article:
    """Decode and clean one source; raise :class:`ArticleError` when it holds no usable text."""
    if source.kind == "jsonl":
        record = json.loads(source.raw)
        fields = {key: record.get(key) for key in ("title", "text", "lang", "url", "date", "source")}
        if not isinstance(fields["text"], str):
            raise ArticleError(f'{source.location}: record has no "text" string', source.doc_id)
        page = _clean_page(fields["text"])
        title = _nfc(fields["title"] or "") or page.title
        url, date, lang = fields["url"] or page.url, fields["date"] or page.date, fields["lang"]
        site = fields["source"] if isinstance(fields["source"], str) and fields["source"].strip() else None
    else:
        text = _decode(source)
        if source.kind == "html":
            text, meta = _html_to_text(text)
        else:
            meta = {}
        page = _clean_page(text)
        title = meta.get("title") or page.title
        url, date, lang = meta.get("url") or page.url, meta.get("date") or page.date, None
        site = None
    body = page.body
    if len(body.split()) < 3:
        raise ArticleError(f"{source.location}: no article text left after cleaning; is the file empty?", source.doc_id)
    return Article(
        doc_id=source.doc_id,
        title=title or _fallback_title(body),
        text=body,
        lang=lang or detect_language(body),
        url=url,
        date=date,
        location=source.location,
        fingerprint=source.fingerprint,
        source=(site or source_of(url) or "").lower() or None,
    )


def source_of(url: str | None) -> str | None:
    """The site of an article URL, without ``www.`` (``https://www.kompas.com/x`` -> ``kompas.com``).

    Bulk records name their source; other articles are filtered by the host of their URL.
    """
    try:
        host = urlsplit(url).hostname if url else None
    except ValueError:  # a malformed URL ("http://[x") names no site
        return None
    return host.removeprefix("www.") if host else None


def load_corpus(path: Path, max_bytes: int = 5_000_000) -> tuple[list[Article], list[ArticleError]]:
    """Read and parse a whole corpus; return the good articles and the errors."""
    articles, errors = [], []
    for item in iter_sources(path, max_bytes):
        if isinstance(item, ArticleError):
            errors.append(item)
            continue
        try:
            articles.append(parse_source(item))
        except ArticleError as exc:
            errors.append(exc)
    return articles, errors


# Byte-order marks, longest first: the UTF-32 LE mark begins with the UTF-16 LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)
# Legacy encodings a text that is not UTF-8 is tried in.  Left to itself, charset-normalizer took a
# latin-1 page for Baltic or Central European (cp1257, cp1250: "à" read as "ą"); the corpus's languages
# are written in Western (cp1252, which latin-1 text decodes in unchanged) or Vietnamese (cp1258) code pages.
LEGACY_ENCODINGS = ("cp1252", "cp1258")


def _decode(source: Source) -> str:
    raw = source.raw
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            return _strict(source, raw, encoding)
    if b"\x00" in raw[:8192]:
        encoding = _utf16_without_bom(raw[:8192])
        text = _lenient(raw, encoding) if encoding else None
        if text is None or not _looks_like_text(text):
            raise ArticleError(f"{source.location}: binary file, not text; remove it from the corpus", source.doc_id)
        return text
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    best = from_bytes(raw, cp_isolation=list(LEGACY_ENCODINGS)).best()
    if best is None:
        raise ArticleError(f"{source.location}: unknown text encoding; re-save it as UTF-8", source.doc_id)
    return str(best)


def _utf16_without_bom(sample: bytes) -> str | None:
    """``"utf-16-le"``/``"utf-16-be"`` when the zero bytes fall on one side of most byte pairs, as in
    UTF-16 text of Latin-script languages; None for other binary data (images, archives)."""
    pairs = len(sample) // 2
    if pairs < 8:
        return None
    zero_odd = sum(1 for i in range(1, 2 * pairs, 2) if sample[i] == 0)
    zero_even = sum(1 for i in range(0, 2 * pairs, 2) if sample[i] == 0)
    if zero_odd >= 0.4 * pairs and zero_even == 0:
        return "utf-16-le"
    if zero_even >= 0.4 * pairs and zero_odd == 0:
        return "utf-16-be"
    return None


def _lenient(raw: bytes, encoding: str) -> str | None:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError:
        return None


def _looks_like_text(text: str) -> bool:
    """Printable characters with spaces between words: what UTF-16 text is and other binary data
    (``b"\\x00\\xff" * 100`` decodes as "ÿÿÿ…") is not."""
    sample = text[:4000]
    printable = all(ch.isprintable() or ch in "\n\r\t" for ch in sample)
    return printable and sum(ch.isspace() for ch in sample) >= 0.05 * len(sample)


def _strict(source: Source, raw: bytes, encoding: str) -> str:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError:
        raise ArticleError(f"{source.location}: not valid {encoding.upper()} although it looks so; "
                           "re-save it as UTF-8", source.doc_id) from None


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip()


# ---------------------------------------------------------------------- html


def _html_to_text(html: str) -> tuple[str, dict[str, str]]:
    soup = BeautifulSoup(html, "html.parser")
    meta = {}
    og_title = soup.find("meta", property="og:title")
    heading = soup.find("h1")
    if og_title and og_title.get("content"):
        meta["title"] = _nfc(og_title["content"])
    elif heading and heading.get_text(strip=True):
        meta["title"] = _nfc(heading.get_text(" ", strip=True))
    elif soup.title and soup.title.string:
        meta["title"] = _nfc(soup.title.string)
    canonical = soup.find("link", rel="canonical") or soup.find("meta", property="og:url")
    if canonical:
        url = canonical.get("href") or canonical.get("content")
        if url and url.startswith("http"):
            meta["url"] = url
    published = soup.find("meta", property="article:published_time") or soup.find("time")
    if published:
        date = _find_date(published.get("content") or published.get("datetime") or published.get_text())
        if date:
            meta["date"] = date
    for tag in soup(["script", "style", "noscript", "nav", "header", "footer", "aside", "form", "template"]):
        tag.decompose()
    if heading:
        heading.decompose()  # the title is kept separately
    root = soup.find("article") or soup.body or soup
    return root.get_text("\n"), meta


# --------------------------------------------------------------------- cleaning

_URL_LINE = re.compile(r"^(?:sumber|nguồn|source|sources|fonte|quelle)\s*:\s*(https?://\S+)\s*$", re.I)
_BARE_URL = re.compile(r"^https?://\S+$")
_CLUTTER_LINE = re.compile(
    r"""^(?:
        (?:komentar|komen|bình\ luận|comments?|ulasan)\s*\(\d+\)   # comment counters
      | no\ data | tidak\ ada\ data | không\ có\ dữ\ liệu
      | (?:share|bagikan|kongsi|chia\ sẻ)(?:\ on)?\ ?:?              # share buttons
      | [\w.-]+\.(?:vn|com|net|org|id|my|co\.id|com\.my)\ [-–|].*     # "site.vn - tagline"
      | .{0,120}\ [-–]\ (?:ảnh|foto|photo|gambar)\ \d+\.?           # numbered photo captions
      | .{0,60}[-–]\ ?(?:ảnh|foto|photo)\ ?:.{0,60}                 # "Author - Photo: Name"
    )$""",
    re.I | re.X,
)
# Headings after which a page lists other stories, not this one.
_RELATED_HEADING = re.compile(
    r"^(?:dalam\ kategori\ yang\ sama|daripada\ pengarang\ yang\ sama|dari\ penulis\ yang\ sama"
    r"|baca\ juga|berita\ terkait|artikel\ terkait|berita\ berkaitan|artikel\ berkaitan"
    r"|tin\ liên\ quan|tin\ cùng\ chuyên\ mục|cùng\ chuyên\ mục|xem\ thêm|đọc\ thêm"
    r"|related(?:\ (?:articles|stories|news))?|read\ more|more\ stories)\s*:?$",
    re.I | re.X,
)
_AGENCY_PREFIX = re.compile(r"^\([A-ZĐ][A-Za-zĐ]{1,8}\)\s*[-–]\s*")
_DATE_PATTERNS = (
    (re.compile(r"(?<!\d)(\d{4})-(\d{1,2})-(\d{1,2})(?!\d)"), (1, 2, 3)),
    (re.compile(r"(?<!\d)(\d{1,2})[/.](\d{1,2})[/.](\d{4})(?!\d)"), (3, 2, 1)),
)
_WORD = re.compile(r"\w+")
RELATED_LIST_WORDS = 25  # story headlines in a related list are shorter than a paragraph
SHORT_LINE_WORDS = 4  # navigation items and bylines are shorter than this
HEADLINE_WORDS = (4, 30)


@dataclass
class _Page:
    title: str | None
    body: str
    url: str | None
    date: str | None


def _clean_page(text: str) -> _Page:
    """Strip clutter from a page's text and pick out title, URL and date."""
    lines = [" ".join(line.split()) for line in _nfc(text).replace("\r", "\n").split("\n")]
    lines = [line for line in lines if line]
    url = date = None
    kept = []
    skipping_related = False
    for line in lines:
        match = _URL_LINE.match(line)
        if match:
            url = url or match.group(1)
            continue
        if _RELATED_HEADING.match(line):
            skipping_related = True
            continue
        if skipping_related and len(_WORD.findall(line)) < RELATED_LIST_WORDS:
            continue
        skipping_related = False
        if _BARE_URL.match(line) or _CLUTTER_LINE.match(line):
            continue
        line_date = _find_date(line)
        if line_date and len(_WORD.findall(line)) <= 8:
            date = date or line_date  # a dateline such as "Báo Thanh Hóa 25/11/2025"
            continue
        kept.append(_AGENCY_PREFIX.sub("", line))
    title, kept = _take_title(kept)
    kept = _drop_repeats(kept, title)
    kept = _trim_short_edges(kept)
    return _Page(title=title, body="\n\n".join(kept), url=url, date=date)


def _shape(line: str) -> str:
    """Line with digits blanked: captions "Ảnh 1", "Ảnh 2" share one shape."""
    return re.sub(r"\d+", "#", line.casefold())


def _is_headline(line: str) -> bool:
    words = len(_WORD.findall(line))
    return HEADLINE_WORDS[0] <= words <= HEADLINE_WORDS[1] and not line.endswith((".", ":", ";", ","))


def _take_title(lines: list[str]) -> tuple[str | None, list[str]]:
    """A headline-like line repeated on the page, else a headline-like line among the first three."""
    counts = Counter(_shape(line) for line in lines)
    for line in lines:
        if counts[_shape(line)] > 1 and _is_headline(line):
            return line, lines
    for index, line in enumerate(lines[:3]):
        if _is_headline(line) and index + 1 < len(lines) and not _is_headline(lines[index + 1]):
            return line, lines[:index] + lines[index + 1 :]
    return None, lines


def _drop_repeats(lines: list[str], title: str | None) -> list[str]:
    """Drop lines that repeat (captions reused as headings) and copies of the title."""
    counts = Counter(_shape(line) for line in lines)
    title_shape = _shape(title) if title else None
    return [line for line in lines if counts[_shape(line)] == 1 and _shape(line) != title_shape]


def _trim_short_edges(lines: list[str]) -> list[str]:
    """Drop navigation crumbs and bylines: very short lines before the first and after the last paragraph."""
    long_lines = [i for i, line in enumerate(lines) if len(_WORD.findall(line)) >= SHORT_LINE_WORDS]
    if not long_lines:
        return lines
    return lines[long_lines[0] : long_lines[-1] + 1]


def _find_date(text: str) -> str | None:
    for pattern, (y, m, d) in _DATE_PATTERNS:
        match = pattern.search(text)
        if match:
            year, month, day = (int(match.group(i)) for i in (y, m, d))
            if 1900 < year < 2100 and 1 <= month <= 12 and 1 <= day <= 31:
                return f"{year:04d}-{month:02d}-{day:02d}"
    return None


def _fallback_title(body: str) -> str:
    """First sentence of the body, shortened: better than a bare file name in a citation."""
    first = re.split(r"(?<=[.!?])\s", body.split("\n\n", 1)[0], maxsplit=1)[0]
    words = first.split()
    return " ".join(words[:14]) + ("…" if len(words) > 14 else "")
