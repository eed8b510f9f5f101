"""Indexing cost: a full build of the seed corpus, one added article versus a full rebuild of a big corpus,
and one added article on an index of ~100k chunks.

    python -m bench indexing [--quick] [--copies N] [--scale-chunks N]

The big corpus is the external benchmark's passages repeated with new ids (a
bulk JSONL import), so it is real multilingual text of realistic length.

Embedding 100k real chunks would take hours here, so the ~100k-chunk index is
prefilled directly through :class:`rag.store.IndexWriter`: the same passages
under new ids, with their real embeddings (taken from the big index) plus a
little noise.  Only the article added on top of it goes through the real
``update_index``, which is what is timed, phase by phase.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass, replace

import numpy as np

from rag.assistant import Assistant
from rag.chunking import Chunk
from rag.config import Settings
from rag.corpus import Article, ArticleError, Source, iter_sources, load_corpus, parse_source
from rag.embeddings import Embedder
from rag.indexing import chunk, derived_text, expected_manifest, update_index
from rag.names import article_vocabulary
from rag.store import IndexStore, IndexWriter, SentenceVectors

from .common import ROOT, SHARED_BENCH, WORK, bench_settings, machine, median, table

NEW_ARTICLE = ROOT / "corpus" / "001_a446dc25cb93e1a2.txt"  # a real news article of 8 chunks
ADDS_AT_SCALE = 3  # incremental adds timed on the big index (median reported)
REMOVED_SHARE = 0.06  # of the articles, removed at the end: more than the store's DELTA_FRACTION
NOISE = 0.015  # per dimension, added to the reused real vectors so copies are near-duplicates, not ties


def passages() -> list[dict]:
    return [json.loads(line) for line in (SHARED_BENCH / "passages.jsonl").read_text().splitlines() if line]


def write_bulk_corpus(copies: int) -> tuple:
    folder = WORK / "indexing"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bulk.jsonl"
    write_copies(path, passages(), copies, "copy")
    return path, copies * len(passages())


def write_copies(path, records: list[dict], copies: int, tag: str) -> None:
    with path.open("w", encoding="utf-8") as out:
        for copy in range(copies):
            for record in records:
                out.write(json.dumps({**record, "id": f"{record['id']}-{tag}{copy}"}, ensure_ascii=False) + "\n")


def append_article(path, number: int) -> str:
    """Append NEW_ARTICLE under a new id to a JSONL corpus; return that id."""
    [article], _ = load_corpus(NEW_ARTICLE)
    record = {"id": f"bench-new-article-{number}", "title": article.title, "text": article.text,
              "lang": article.lang, "url": article.url}
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return record["id"]


def timed_index(assistant: Assistant, **kwargs):
    started = time.perf_counter()
    report = assistant.index(progress=False, **kwargs)
    return time.perf_counter() - started, report


# --------------------------------------------------------------------- issue 2: seed and bulk corpus


def seed_and_bulk(embedder: Embedder, quick: bool, copies: int) -> tuple[list[list], Assistant, float]:
    """Rows for the seed and bulk runs, the bulk assistant (its index feeds the scale run), and chunks/s."""
    rows = []
    seed = Assistant(bench_settings("indexing-seed", ROOT / "corpus"), embedder=embedder)
    runs = [timed_index(seed, rebuild=True) for _ in range(1 if quick else 3)]
    seconds = median([s for s, _ in runs])
    chunks = runs[0][1].total_chunks
    rows.append(["seed corpus, full build" + ("" if quick else " (median of 3)"), runs[0][1].total_articles, chunks,
                 seconds, chunks / seconds])
    noop, _ = timed_index(seed)
    rows.append(["seed corpus, nothing changed", runs[0][1].total_articles, 0, noop, 0.0])

    bulk_path, _ = write_bulk_corpus(copies)
    big = Assistant(bench_settings("indexing-bulk", bulk_path), embedder=embedder)
    full, report = timed_index(big, rebuild=True)
    rate = report.total_chunks / full
    rows.append([f"bulk JSONL ×{copies}, full build", report.total_articles, report.total_chunks, full, rate])
    new_id = append_article(bulk_path, 0)
    added, report = timed_index(big)
    assert report.added == [new_id], report.summary()
    rows.append(["bulk + 1 new article, incremental", report.total_articles, report.embedded_chunks, added,
                 report.embedded_chunks / added])
    return rows, big, rate


# --------------------------------------------------------------------- issue 6: one article on ~100k chunks


@dataclass
class Template:
    """One external passage, parsed and chunked once, with its chunks' (and their sentences') real vectors."""

    article: Article
    chunks: list[Chunk]
    vectors: np.ndarray
    sentences: list[SentenceVectors]


def templates(settings: Settings, bulk: IndexStore) -> list[Template]:
    """The external passages, parsed and chunked as the bulk index did, with the vectors stored for copy 0."""
    stored = {p.chunk_id: p.row_id for p in bulk.all_passages() if p.doc_id.endswith("-copy0")}
    out = []
    for source in iter_sources(SHARED_BENCH / "passages.jsonl", settings.max_article_bytes):
        if not isinstance(source, Source):
            continue
        try:
            article = parse_source(source)
        except ArticleError:
            continue  # not in the bulk index either
        chunks = chunk(settings, article)
        row_ids = [stored[f"{article.doc_id}-copy0#{c.position}"] for c in chunks]
        sentences = bulk.sentence_vectors(row_ids)
        out.append(Template(article, chunks, bulk.vectors_for(row_ids), [sentences[i] for i in row_ids]))
    return out


def prefill(settings: Settings, embedder: Embedder, target_chunks: int, bulk: IndexStore) -> float:
    """Write a corpus of ~``target_chunks`` chunks and its index without embedding; return seconds taken."""
    started = time.perf_counter()
    parts = templates(settings, bulk)
    per_copy = sum(len(t.chunks) for t in parts)
    settings.corpus.parent.mkdir(parents=True, exist_ok=True)
    by_id = {t.article.doc_id: t for t in parts}
    records = [record for record in passages() if record["id"] in by_id]
    write_copies(settings.corpus, records, math.ceil(target_chunks / per_copy), "scale")
    rng = np.random.default_rng(0)
    derived = {t.article.doc_id: [derived_text(t.article.title, c.text) for c in t.chunks] for t in parts}
    vocabularies = {t.article.doc_id: article_vocabulary(t.article.title, t.article.text) for t in parts}
    with IndexWriter(settings.index, expected_manifest(settings, embedder), start_empty=True,
                     ivf_threshold=settings.ivf_threshold) as writer:
        for source in _sources(settings.corpus, settings):
            template = by_id[source.doc_id.rsplit("-scale", 1)[0]]
            vectors = template.vectors + rng.standard_normal(template.vectors.shape).astype(np.float32) * NOISE
            writer.add_article(
                replace(template.article, doc_id=source.doc_id, location=source.location,
                        fingerprint=source.fingerprint),
                [replace(c, doc_id=source.doc_id) for c in template.chunks],
                vectors / np.linalg.norm(vectors, axis=1, keepdims=True),
                template.sentences,
                derived[template.article.doc_id],
                vocabularies[template.article.doc_id],
            )
        writer.commit()
    return time.perf_counter() - started


def _sources(path, settings: Settings) -> list[Source]:
    return [s for s in iter_sources(path, settings.max_article_bytes) if isinstance(s, Source)]


PHASES = ("plan", "parse", "chunk", "embed", "embed sentences", "open writer", "write rows", "commit")


def at_scale(embedder: Embedder, target_chunks: int, bulk: IndexStore, rate: float) -> None:
    settings = bench_settings("indexing-scale", WORK / "indexing-scale" / "corpus.jsonl")
    filled = prefill(settings, embedder, target_chunks, bulk)
    store = IndexStore.open(settings.index)
    total = store.manifest.chunks
    print(f"\nprefilled {store.manifest.articles} articles, {total} chunks in {filled:.0f}s "
          f"(layout {store.manifest.layout}); SQLite {_mb(settings.index / store.manifest.metadata):.0f} MB, "
          f"vectors.faiss {_mb(store.generation / 'vectors.faiss'):.0f} MB")
    store.close()

    rows = []
    for number in range(1, ADDS_AT_SCALE + 1):
        new_id = append_article(settings.corpus, number)
        report, row = timed_update(settings, embedder, f"add #{number}")
        assert report.added == [new_id], report.summary()
        rows.append(row)
    removed = drop_every(settings.corpus, REMOVED_SHARE)
    report, row = timed_update(settings, embedder, f"remove {len(removed)} articles (rewrites vectors.faiss)")
    assert sorted(report.removed) == sorted(removed), report.summary()
    middle = sorted(rows, key=lambda row: row[-2])[len(rows) // 2]
    rebuild = total / rate
    print(f"\n{machine()}; updates of an index of {total} chunks\n")
    print(table(["run", "chunks embedded", *PHASES, "other", "total s", "open for search s"], rows + [row]))
    print(f"\nmedian incremental add: {middle[-2]:.2f}s, of which embedding {middle[5] + middle[6]:.2f}s; "
          f"full rebuild of {total} chunks at the measured {rate:.1f} chunks/s ≈ {rebuild:.0f}s "
          f"(extrapolated, not run): {rebuild / middle[-2]:.0f}× the incremental add")


def timed_update(settings: Settings, embedder: Embedder, name: str) -> tuple:
    """Run update_index; return its report and a table row: phases, total, and the time to open the result."""
    started = time.perf_counter()
    report = update_index(settings, embedder, progress=False)
    seconds = time.perf_counter() - started
    opened = time.perf_counter()
    IndexStore.open(settings.index).close()
    reopen = time.perf_counter() - opened
    other = seconds - sum(report.timings.values())
    return report, [name, report.embedded_chunks, *[report.timings.get(p, 0.0) for p in PHASES], other, seconds,
                    reopen]


def drop_every(path, share: float) -> list[str]:
    """Remove every n-th record of a JSONL corpus (n = 1/share); return the removed ids."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    step = round(1 / share)
    path.write_text("".join(line for i, line in enumerate(lines) if i % step), encoding="utf-8")
    return [json.loads(line)["id"] for i, line in enumerate(lines) if not i % step]


def _mb(path) -> float:
    return path.stat().st_size / 2**20


def run(quick: bool, copies: int, scale_chunks: int) -> None:
    embedder = Embedder()
    embedder.embed_query("warm up")  # model loading is not indexing
    rows, big, rate = seed_and_bulk(embedder, quick, copies)
    print(f"\n{machine()}\n")
    print(table(["run", "articles", "chunks embedded", "seconds", "chunks/s"], rows))
    full, added = rows[2][3], rows[3][3]
    print(f"\nincremental add / full rebuild of the bulk corpus: {added / full:.4f} ({full / added:.0f}× faster)")
    if scale_chunks:
        at_scale(embedder, scale_chunks, big.store, rate)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one seed build, 2 copies, 10k chunks at scale")
    parser.add_argument("--copies", type=int, default=4, help="how many times to repeat the 513 passages")
    parser.add_argument("--scale-chunks", type=int, default=100_000,
                        help="size of the prefilled index for the incremental-add run (0 skips it)")
    args = parser.parse_args(argv)
    run(args.quick, 2 if args.quick else args.copies, 10_000 if args.quick else args.scale_chunks)


if __name__ == "__main__":
    main()
