"""Bringing the index up to date with the corpus, doing only the work that changed.

Each source is fingerprinted from its raw bytes; only added or changed
articles are parsed, chunked and embedded, removed ones are deleted, and the
result is published as one atomic generation (see :mod:`rag.store`).  A
change of model or chunking parameters makes every article "changed", which
is a full rebuild.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from .chunking import Chunk, chunk_article
from .config import Settings
from .corpus import PARSER_VERSION, Article, ArticleError, Source, iter_sources, parse_source
from .embeddings import Embedder
from .store import IndexCorrupt, IndexWriter, Manifest, SentenceVectors, live_fingerprints, live_generation


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


def expected_manifest(settings: Settings, embedder: Embedder) -> Manifest:
    return Manifest(
        model=settings.model,
        model_fingerprint=embedder.fingerprint,
        dim=embedder.dim,
        chunk_tokens=settings.chunk_tokens,
        chunk_overlap=settings.chunk_overlap,
        encoding=settings.encoding,
        parser_version=PARSER_VERSION,
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
    """Make the index in ``settings.index`` match the corpus in ``settings.corpus``."""
    started = time.perf_counter()
    embedder = embedder or Embedder.from_settings(settings)
    manifest = expected_manifest(settings, embedder)
    report = IndexReport()
    with report.timed("plan"):
        stored, rebuild, live = _stored_fingerprints(settings, manifest, rebuild)
        plan = _plan(settings, stored)
    report.unchanged, report.rebuilt, report.errors = plan.unchanged, rebuild, [str(e) for e in plan.errors]

    parsed: list[Article] = []
    with report.timed("parse"):
        for source in plan.to_parse:
            try:
                parsed.append(parse_source(source))
            except ArticleError as exc:
                report.errors.append(str(exc))
                if source.doc_id in stored:
                    report.unchanged += 1  # keep the version already indexed
    for article in parsed:
        (report.changed if article.doc_id in stored else report.added).append(article.doc_id)
    report.removed = sorted(plan.to_remove)

    if report.changed_anything or live is None:
        live = _write(settings, embedder, manifest, parsed, report, start_empty=rebuild, progress=progress)
    report.total_articles, report.total_chunks = live.articles, live.chunks
    report.seconds = time.perf_counter() - started
    return report


def _stored_fingerprints(
    settings: Settings, manifest: Manifest, rebuild: bool
) -> tuple[dict[str, str], bool, Manifest | None]:
    """Fingerprints and manifest of the live index; ``({}, True, None)`` when it must be rebuilt.

    That is when a rebuild is asked for, or the index is missing, unreadable or incompatible.
    """
    if rebuild or live_generation(settings.index) is None:
        return {}, True, None
    try:
        live, fingerprints = live_fingerprints(settings.index)
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
    embedder: Embedder,
    manifest: Manifest,
    articles: list[Article],
    report: IndexReport,
    *,
    start_empty: bool,
    progress: bool,
) -> Manifest:
    with report.timed("chunk"):
        chunked = [(article, chunk(settings, article)) for article in articles]
    vectors, sentences = _embed(embedder, [c for _, chunks in chunked for c in chunks],
                                settings.embed_batch_size, progress, report)
    report.embedded_chunks = len(vectors)
    with ExitStack() as stack:
        with report.timed("open writer"):
            writer = stack.enter_context(
                IndexWriter(settings.index, manifest, start_empty=start_empty, ivf_threshold=settings.ivf_threshold)
            )
        with report.timed("write rows"):
            writer.remove_articles(report.changed + report.removed)
            offset = 0
            for article, chunks in chunked:
                end = offset + len(chunks)
                writer.add_article(article, chunks, vectors[offset:end], sentences[offset:end])
                offset = end
        with report.timed("commit"):
            return writer.commit()


def _embed(
    embedder: Embedder, chunks: list[Chunk], batch_size: int, progress: bool, report: IndexReport
) -> tuple[np.ndarray, list[SentenceVectors]]:
    """One vector per chunk, and per chunk the vectors of its sentences, from one pass of the model over each chunk.

    The sentence vectors are pooled from the chunk's own tokens (see
    :meth:`Embedder.embed_passages_and_spans`), so they cost no second encoding.
    """
    spans = [list(c.sentences) or [(0, len(c.text))] for c in chunks]
    texts = [c.embedding_text() for c in chunks]
    # the chunk's text ends its embedding text (after the title, when there is one)
    shifted = [[(s + len(t) - len(c.text), e + len(t) - len(c.text)) for s, e in own]
               for c, t, own in zip(chunks, texts, spans)]
    vectors, sentence_vectors = [], []
    step = max(batch_size * 8, 1)
    with report.timed("embed"), tqdm(total=len(texts), desc="embedding", unit="chunk",
                                     disable=not progress or not texts) as bar:
        for first in range(0, len(texts), step):  # in slices, so the progress bar moves
            part, part_sentences = embedder.embed_passages_and_spans(
                texts[first : first + step], shifted[first : first + step], batch_size)
            vectors.append(part)
            sentence_vectors += part_sentences
            bar.update(len(part))
    sentences = [SentenceVectors(own, pooled) for own, pooled in zip(spans, sentence_vectors)]
    return (np.concatenate(vectors) if vectors else np.zeros((0, embedder.dim), dtype=np.float32)), sentences
