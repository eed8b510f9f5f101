"""Indexing cost: a full build of the seed corpus, and one added article versus a full rebuild of a big corpus.

    python -m bench indexing [--quick] [--copies N]

The big corpus is the external benchmark's passages repeated with new ids (a
bulk JSONL import), so it is real multilingual text of realistic length.
"""

from __future__ import annotations

import argparse
import json
import time

from rag.assistant import Assistant
from rag.embeddings import Embedder

from .common import ROOT, SHARED_BENCH, WORK, bench_settings, machine, median, table

NEW_ARTICLE = {
    "id": "bench-new-article",
    "title": "Quảng Nam và Busan ký biên bản hợp tác cảng biển",
    "text": "Tỉnh Quảng Nam và thành phố Busan đã ký biên bản ghi nhớ hợp tác về cảng biển Chu Lai, "
    "đào tạo 120 kỹ sư logistics và xúc tiến đầu tư trong giai đoạn 2026-2028. " * 3,
    "lang": "vi",
}


def write_bulk_corpus(copies: int) -> tuple:
    passages = [json.loads(line) for line in (SHARED_BENCH / "passages.jsonl").read_text().splitlines() if line]
    folder = WORK / "indexing"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bulk.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for copy in range(copies):
            for passage in passages:
                out.write(json.dumps({**passage, "id": f"{passage['id']}-copy{copy}"}, ensure_ascii=False) + "\n")
    return path, copies * len(passages)


def timed_index(assistant: Assistant, **kwargs):
    started = time.perf_counter()
    report = assistant.index(progress=False, **kwargs)
    return time.perf_counter() - started, report


def run(quick: bool, copies: int) -> None:
    embedder = Embedder()
    embedder.embed_query("warm up")  # model loading is not indexing
    rows = []

    seed = Assistant(bench_settings("indexing-seed", ROOT / "corpus"))
    seed.embedder = embedder
    runs = [timed_index(seed, rebuild=True) for _ in range(1 if quick else 3)]
    seconds = median([s for s, _ in runs])
    chunks = runs[0][1].total_chunks
    rows.append(["seed corpus, full build", runs[0][1].total_articles, chunks, seconds, chunks / seconds])
    noop, _ = timed_index(seed)
    rows.append(["seed corpus, nothing changed", runs[0][1].total_articles, 0, noop, 0.0])

    bulk_path, n_articles = write_bulk_corpus(copies)
    big = Assistant(bench_settings("indexing-bulk", bulk_path))
    big.embedder = embedder
    full, report = timed_index(big, rebuild=True)
    rows.append([f"bulk JSONL ×{copies}, full build", report.total_articles, report.total_chunks, full,
                 report.total_chunks / full])

    with bulk_path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(NEW_ARTICLE, ensure_ascii=False) + "\n")
    added, report = timed_index(big)
    assert report.added == [NEW_ARTICLE["id"]], report.summary()
    rows.append(["bulk + 1 new article, incremental", report.total_articles, report.embedded_chunks, added,
                 report.embedded_chunks / added])

    print(f"\n{machine()}\n")
    print(table(["run", "articles", "chunks embedded", "seconds", "chunks/s"], rows))
    print(f"\nincremental add / full rebuild of the bulk corpus: {added / full:.4f} ({full / added:.0f}× faster)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one seed build, 2 copies of the passages")
    parser.add_argument("--copies", type=int, default=8, help="how many times to repeat the 515 passages")
    args = parser.parse_args(argv)
    run(args.quick, 2 if args.quick else args.copies)


if __name__ == "__main__":
    main()
