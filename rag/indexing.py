"""Bringing the index up to date with the corpus, doing only the work that changed.

Each source is fingerprinted from its raw bytes; only added or changed
articles are parsed, chunked and embedded, removed ones are deleted, and the
result is published as one atomic generation (see :mod:`rag.store`).  A
change of model or chunking parameters makes every article "changed", which
is a full rebuild.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .chunking import Chunk, chunk_article
from .config import Settings
from .corpus import PARSER_VERSION, Article, ArticleError, Source, iter_sources, parse_source
from . import language, names
from .embeddings import Embedder
from .language import lexical_tokens
from .store import IndexCorrupt, IndexReadOnly, Manifest, SentenceVectors
from .stores import Backend, backend_for


@dataclass
class IndexReport:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)
    embedded_chunks: int = 0
    total_articles: int = 0
    total_chunks: int = 0
    rebuilt: bool = False
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase, for bench/indexing.py

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[phase] = self.timings.get(phase, 0.0) + time.perf_counter() - started

    @property
    def changed_anything(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def summary(self) -> str:
        what = "rebuilt" if self.rebuilt else "updated" if self.changed_anything else "up to date"
        line = (
            f"index {what}: {len(self.added)} added, {len(self.changed)} changed, {len(self.removed)} removed, "
            f"{self.unchanged} unchanged; {self.total_articles} articles, {self.total_chunks} chunks "
            f"({self.embedded_chunks} embedded) in {self.seconds:.1f}s"
        )
        if self.errors:
            line += f"; {len(self.errors)} file(s) skipped"
        return line


@dataclass
class _Plan:
    to_parse: list[Source]
    to_remove: list[str]
    unchanged: int
    errors: list[ArticleError]


@lru_cache(maxsize=1)
def names_version() -> str:
    """A fingerprint of the name finder and the lexical tokeniser (rag.names, rag.language, the gazetteer data).

    Stored in the manifest: when it changes (a gazetteer edit), the next update recomputes every
    chunk's names and tokens and every article's vocabulary from the stored text, without re-embedding.
    """
    module = Path(names.__file__)
    digest = hashlib.sha256(module.read_bytes() + Path(language.__file__).read_bytes())
    for data in sorted((module.parent / "data").glob("*")):
        digest.update(data.name.encode() + data.read_bytes())
    return digest.hexdigest()[:16]


def derived_text(title: str, text: str) -> tuple[frozenset[str], list[str]]:
    """A chunk's name keys and lexical tokens, with its article's title (which names what the article is about)."""
    titled = f"{title}\n{text}"
    return names.name_keys(titled), lexical_tokens(titled)


def expected_manifest(settings: Settings, embedder: Embedder) -> Manifest:
    return Manifest(
        model=settings.model,
        model_fingerprint=embedder.fingerprint,
        dim=embedder.dim,
        chunk_tokens=settings.chunk_tokens,
        chunk_overlap=settings.chunk_overlap,
        encoding=settings.encoding,
        parser_version=PARSER_VERSION,
        names_version=names_version(),
    )


def chunk(settings: Settings, article: Article) -> list[Chunk]:
    return chunk_article(article, settings.chunk_tokens, settings.chunk_overlap, settings.encoding)


def update_index(
    settings: Settings,
    embedder: Embedder | None = None,
    *,
    rebuild: bool = False,
    progress: bool = True,
) -> IndexReport:
    """Make the index in ``settings.index`` match the corpus in ``settings.corpus``.

    Planning is done twice when there is work: first without the writer lock, so a no-op update
    (every ``rag search``, every page load) never waits for or needs write access; then again under
    the lock, from whatever generation is live by then, so concurrent writers never add the same
    article twice.  A read-only index folder keeps serving its index, with the pending changes
    reported as an error.
    """
    started = time.perf_counter()
    embedder = embedder or Embedder.from_settings(settings)
    manifest = expected_manifest(settings, embedder)
    backend = backend_for(settings.index)
    report, live, plan, stored = _planned(settings, backend, manifest, rebuild)
    if _needs_write(backend, manifest, report, live):
        try:
            with backend.writer_lock():
                report, live, plan, stored = _planned(settings, backend, manifest, rebuild)
                if _needs_write(backend, manifest, report, live):
                    live = _apply(settings, backend, embedder, manifest, plan, stored, report, progress, live)
        except IndexReadOnly as exc:
            if live is None:
                raise
            report = _unapplied(report, f"{exc}; answering from the index as it is, without these changes")
    report.total_articles, report.total_chunks = live.articles, live.chunks
    report.seconds = time.perf_counter() - started
    return report


def _planned(settings: Settings, backend: Backend, manifest: Manifest, rebuild: bool):
    """What an update would do, as a report of it: (report, live manifest or None, plan, stored fingerprints)."""
    report = IndexReport()
    with report.timed("plan"):
        stored, rebuild, live = _stored_fingerprints(backend, manifest, rebuild)
        plan = _plan(settings, stored)
    report.unchanged, report.rebuilt, report.errors = plan.unchanged, rebuild, [str(e) for e in plan.errors]
    report.added = [s.doc_id for s in plan.to_parse if s.doc_id not in stored]
    report.changed = [s.doc_id for s in plan.to_parse if s.doc_id in stored]
    report.removed = sorted(plan.to_remove)
    return report, live, plan, stored


def _apply(settings, backend: Backend, embedder, manifest, plan, stored, report: IndexReport, progress: bool,
           live: Manifest | None) -> Manifest:
    """Parse the planned sources and write the next generation, unless none parses; ``report`` is corrected for
    articles that fail."""
    parsed: list[Article] = []
    with report.timed("parse"):
        for source in plan.to_parse:
            try:
                parsed.append(parse_source(source))
            except ArticleError as exc:
                report.errors.append(str(exc))
                if source.doc_id in stored:
                    report.unchanged += 1  # keep the version already indexed
    ok = {article.doc_id for article in parsed}
    report.added = [doc_id for doc_id in report.added if doc_id in ok]
    report.changed = [doc_id for doc_id in report.changed if doc_id in ok]
    if not _needs_write(backend, manifest, report, live):
        return live
    return _write(settings, backend, embedder, manifest, parsed, report, start_empty=report.rebuilt, progress=progress,
                  recompute_names=_names_stale(manifest, live))


def _needs_write(backend: Backend, manifest: Manifest, report: IndexReport, live: Manifest | None) -> bool:
    """Articles to add, change or remove, no index yet, or derived data (names, saved statistics) to redo."""
    return (report.changed_anything or live is None or _names_stale(manifest, live)
            or backend.derived_missing())


def _names_stale(manifest: Manifest, live: Manifest | None) -> bool:
    """Whether the live index's names were found by another version of the name code (recomputed, not re-embedded)."""
    return live is not None and live.names_version != manifest.names_version


def _unapplied(report: IndexReport, error: str) -> IndexReport:
    """``report`` turned into "nothing changed", with ``error`` saying why."""
    unapplied = IndexReport()
    unapplied.unchanged = report.unchanged + len(report.changed) + len(report.removed)
    unapplied.errors = [*report.errors, error]
    return unapplied


def _stored_fingerprints(
    backend: Backend, manifest: Manifest, rebuild: bool
) -> tuple[dict[str, str], bool, Manifest | None]:
    """Fingerprints and manifest of the live index; ``({}, True, None)`` when it must be rebuilt.

    That is when a rebuild is asked for, or the index is missing, unreadable or incompatible.
    """
    try:
        if rebuild or not backend.exists():
            return {}, True, None
        live, fingerprints = backend.live_fingerprints()
    except IndexCorrupt:
        return {}, True, None
    if not live.compatible_with(manifest):
        return {}, True, None
    return fingerprints, False, live


def _plan(settings: Settings, stored: dict[str, str]) -> _Plan:
    to_parse, errors, seen, unchanged = [], [], set(), 0
    for item in iter_sources(settings.corpus, settings.max_article_bytes):
        if isinstance(item, ArticleError):
            errors.append(item)
            if item.doc_id:
                seen.add(item.doc_id)  # a bad file keeps its indexed version
            continue
        seen.add(item.doc_id)
        if stored.get(item.doc_id) == item.fingerprint:
            unchanged += 1
        else:
            to_parse.append(item)
    to_remove = [doc_id for doc_id in stored if doc_id not in seen]
    return _Plan(to_parse, to_remove, unchanged, errors)


def _write(
    settings: Settings,
    backend: Backend,
    embedder: Embedder,
    manifest: Manifest,
    articles: list[Article],
    report: IndexReport,
    *,
    start_empty: bool,
    progress: bool,
    recompute_names: bool = False,
) -> Manifest:
    with report.timed("chunk"):
        chunked = [(article, _capped(settings, article, report)) for article in articles]
    vectors, sentences = _embed(embedder, [c for _, chunks in chunked for c in chunks],
                                settings.embed_batch_size, progress, report)
    report.embedded_chunks = len(vectors)
    with ExitStack() as stack:
        with report.timed("open writer"):
            writer = stack.enter_context(
                backend.writer(manifest, start_empty=start_empty, ivf_threshold=settings.ivf_threshold))
        with report.timed("write rows"):
            writer.remove_articles(report.changed + report.removed)
            offset = 0
            for article, chunks in chunked:
                end = offset + len(chunks)
                writer.add_article(article, chunks, vectors[offset:end], sentences[offset:end],
                                   [derived_text(article.title, c.text) for c in chunks],
                                   names.article_vocabulary(article.title, article.text))
                offset = end
        if recompute_names:
            with report.timed("names"):
                writer.replace_derived_text(
                    ((p.row_id, *derived_text(p.title, p.text)) for p in writer.passages()),
                    ((a.doc_id, names.article_vocabulary(a.title, a.text)) for a in writer.articles()))
        with report.timed("commit"):  # with the corpus statistics
            return writer.commit()


def _capped(settings: Settings, article: Article, report: IndexReport) -> list[Chunk]:
    """The article's passages, at most ``max_article_chunks`` of them, with a warning when some are left out.

    A 2 MB line without punctuation became 1,660 passages (282 s and 1.96 GB to embed) with no word said;
    no news article is that long, so it is data the user should split, and embedding all of it is not worth
    freezing the machine.
    """
    chunks = chunk(settings, article)
    limit = settings.max_article_chunks
    if len(chunks) <= limit:
        return chunks
    report.errors.append(f"{article.location}: {len(chunks)} passages, only the first {limit} are indexed "
                         "(max_article_chunks); split it into several articles")
    return chunks[:limit]


def _embed(
    embedder: Embedder, chunks: list[Chunk], batch_size: int, progress: bool, report: IndexReport
) -> tuple[np.ndarray, list[SentenceVectors]]:
    """One vector per chunk, and per chunk two vectors of each of its sentences: read in context and alone.

    The context-read ones are pooled from the chunk's own tokens (see
    :meth:`Embedder.embed_passages_and_spans`) at no extra cost; the ones read
    alone, which re-ranking needs (:class:`SentenceVectors`), are a second
    encoding that takes about 0.9× the time of the chunks' own (bench/README §9).
    """
    spans = [list(c.sentences) or [(0, len(c.text))] for c in chunks]
    texts = [c.embedding_text() for c in chunks]
    # the chunk's text ends its embedding text (after the title, when there is one)
    shifted = [[(s + len(t) - len(c.text), e + len(t) - len(c.text)) for s, e in own]
               for c, t, own in zip(chunks, texts, spans)]
    vectors, sentences = [], []
    step = max(batch_size * 8, 1)
    with tqdm(total=len(texts), desc="embedding", unit="chunk", disable=not progress or not texts) as bar:
        for first in range(0, len(texts), step):  # in slices, so the progress bar moves
            part_spans = spans[first : first + step]
            with report.timed("embed"):
                part, pooled = embedder.embed_passages_and_spans(texts[first : first + step],
                                                                 shifted[first : first + step], batch_size)
            with report.timed("embed sentences"):
                alone = _embed_alone([c.text[s:e] for c, own in zip(chunks[first : first + step], part_spans)
                                      for s, e in own], embedder, batch_size)
            bounds = np.cumsum([0, *(len(own) for own in part_spans)])
            vectors.append(part)
            sentences += [SentenceVectors(own, in_context, alone[start:end])
                          for own, in_context, start, end in zip(part_spans, pooled, bounds, bounds[1:])]
            bar.update(len(part))
    return (np.concatenate(vectors) if vectors else np.zeros((0, embedder.dim), dtype=np.float32)), sentences


def _embed_alone(sentences: list[str], embedder: Embedder, batch_size: int) -> np.ndarray:
    """Each distinct sentence encoded on its own, once: the sentences consecutive chunks share (their overlap,
    11 % of the sentences of the first 1,000 news articles) are not encoded twice."""
    unique = list(dict.fromkeys(sentences))
    vectors = embedder.embed_passages(unique, batch_size, bulk=True)
    row = {sentence: i for i, sentence in enumerate(unique)}
    return vectors[[row[sentence] for sentence in sentences]]
