"""Retrieval and no-LLM answers in one index that grows like a real news corpus.

    python -m bench grown [--n 300,1000,3000] [--external-sample K] [--out FILE] [--thresholds FILE]

One index holds the 5 seed articles (``corpus/``), the 515 external passages
(xquad-facqa) and the first N real news articles of
``/work/shared/bench/news/articles.jsonl``, for each N in ``--n``.  It grows
incrementally: each N only embeds its new articles (the real ``update_index``).
Every question set is then asked through the library API (``Assistant``,
``evaluate``) in no-LLM mode:

- ``eval``: eval/questions.jsonl (about the seed articles);
- ``news``: eval/questions-news.jsonl, when present (a question with ``"min_n"`` is skipped below that N);
- ``external``: the xquad-facqa questions (all, or a fixed sample with ``--external-sample``).

The rows at N=0 are the small corpora alone: the seed articles for ``eval``,
the external passages for ``external``; they show what growing costs.

The data never enters the repository: the corpus folder, the live index and a
copy of each N's index live under ``$RAG_BENCH_WORK/grown`` (default
``~/.cache/rag-news/bench/grown``).  A rerun restores each N's copy and runs the
incremental update on it, so with unchanged code and settings nothing is
embedded again; a change of model, chunking or index format rebuilds.

``--thresholds FILE`` gates CI: a JSON object of dotted paths into the result's
``gate`` (``"300.eval.retrieval.recall@5": 0.9``,
``"300.external.by_group.en→vi.retrieval.recall@5": 0.85``) and minimum values;
any metric below its minimum (or missing) fails with exit status 1.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from rag.assistant import Assistant
from rag.config import load_settings
from rag.embeddings import Embedder
from rag.evaluation import EvalQuestion, check_thresholds, evaluate, load_questions, load_thresholds

from .common import ROOT, SHARED_BENCH, WORK, machine, table

NEWS = Path(SHARED_BENCH).parent / "news" / "articles.jsonl"
SEED = ROOT / "corpus"
QUESTION_SETS = {
    "eval": ROOT / "eval" / "questions.jsonl",
    "news": ROOT / "eval" / "questions-news.jsonl",
    "external": SHARED_BENCH / "questions.jsonl",
}
BUILD_RECORD = "bench-grown-build.json"  # beside the index's generations; the store leaves other files alone
EXTERNAL_ALONE = "external"  # the stage before N=0: the external passages alone
METRICS = (("recall@1", "retrieval"), ("recall@5", "retrieval"), ("recall@10", "retrieval"),
           ("mrr@10", "retrieval"), ("accuracy", "answers"), ("accuracy", "refusal"))


# ------------------------------------------------------------------ the growing corpus and its index


class GrownCorpus:
    """The corpus folder and index of one stage, and the saved copy of each stage's index."""

    def __init__(self, work: Path):
        self.work = work
        self.corpus = work / "corpus"
        self.index = work / "index"
        self.copies = work / "indexes"

    def write(self, stage: str) -> None:
        """The corpus of ``stage``: external passages, then the seed articles, then the first N news articles."""
        self.corpus.mkdir(parents=True, exist_ok=True)
        _write_if_changed(self.corpus / "external.jsonl", (SHARED_BENCH / "passages.jsonl").read_bytes())
        for seed in sorted(SEED.glob("*.txt")):
            target = self.corpus / seed.name
            if stage == EXTERNAL_ALONE:
                target.unlink(missing_ok=True)
            else:
                _write_if_changed(target, seed.read_bytes())
        news = self.corpus / "news.jsonl"
        if stage in (EXTERNAL_ALONE, "0"):
            news.unlink(missing_ok=True)
        else:
            _write_if_changed(news, b"".join(_first_lines(NEWS, int(stage))))

    def restore(self, stage: str, earlier: list[str]) -> dict:
        """Make the live index the saved copy of ``stage``, or else of the latest earlier stage; return its build record."""
        for candidate in [stage, *reversed(earlier)]:
            copy = self.copies / candidate
            if (copy / BUILD_RECORD).is_file():
                shutil.rmtree(self.index, ignore_errors=True)
                shutil.copytree(copy, self.index, symlinks=True)
                return {**json.loads((copy / BUILD_RECORD).read_text()), "restored_from": candidate}
        shutil.rmtree(self.index, ignore_errors=True)
        return {"cumulative_seconds": 0.0, "restored_from": None}

    def save(self, stage: str, record: dict) -> None:
        """Keep a copy of the live index (with its build record) for reruns and for other benchmarks to copy."""
        (self.index / BUILD_RECORD).write_text(json.dumps(record, indent=2))
        copy = self.copies / stage
        shutil.rmtree(copy, ignore_errors=True)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(self.index, copy, symlinks=True)


def _write_if_changed(path: Path, data: bytes) -> None:
    if not path.is_file() or path.read_bytes() != data:
        path.write_bytes(data)


def _first_lines(path: Path, n: int) -> list[bytes]:
    lines = []
    with path.open("rb") as handle:
        for line in handle:
            if len(lines) == n:
                break
            lines.append(line)
    if len(lines) < n:
        sys.exit(f"{path} has only {len(lines)} articles, fewer than N={n}")
    return lines


def build_stage(grown: GrownCorpus, stage: str, earlier: list[str], embedder: Embedder) -> tuple[Assistant, dict]:
    """Bring the index to ``stage`` incrementally; return an assistant on it and the stage's build figures."""
    grown.write(stage)
    previous = grown.restore(stage, earlier)
    assistant = _assistant(grown.corpus, grown.index, embedder)
    report = assistant.index()
    print(f"[{stage}] {report.summary()}", flush=True)
    if not report.changed_anything and previous.get("restored_from") == stage:
        return assistant, {**previous, "reused": True}
    cumulative = report.seconds if report.rebuilt else previous["cumulative_seconds"] + report.seconds
    record = {
        "stage": stage, "articles": report.total_articles, "chunks": report.total_chunks,
        "embedded_chunks": report.embedded_chunks, "seconds": report.seconds,
        "chunks_per_second": report.embedded_chunks / report.seconds if report.embedded_chunks else None,
        "timings": report.timings, "rebuilt": report.rebuilt, "cumulative_seconds": cumulative,
        "manifest": asdict(assistant.store.manifest), "built": time.strftime("%Y-%m-%d %H:%M"),
    }
    grown.save(stage, record)
    return assistant, {**record, "reused": False}


def _assistant(corpus: Path, index: Path, embedder: Embedder) -> Assistant:
    return Assistant(load_settings(corpus=corpus, index=index), embedder=embedder)  # one model for every stage


# ------------------------------------------------------------------ questions and scores


def question_sets(external_sample: int | None) -> dict[str, list[tuple[EvalQuestion, int]]]:
    """Each present question set as (question, smallest N it applies to)."""
    sets = {}
    for name, path in QUESTION_SETS.items():
        if not path.is_file():
            continue
        min_n = [json.loads(line).get("min_n", 0) for line in path.read_text(encoding="utf-8").splitlines()
                 if line.strip()]
        pairs = list(zip(load_questions(path), min_n, strict=True))
        if name == "external" and external_sample and external_sample < len(pairs):
            pairs = pairs[:: -(-len(pairs) // external_sample)]  # a fixed, spread sample across the groups
        sets[name] = pairs
    return sets


def stage_sets(stage: str, sets: dict) -> dict[str, list[EvalQuestion]]:
    """The questions asked at ``stage``: at N=0 each small corpus answers its own set."""
    if stage == EXTERNAL_ALONE:
        return {"external": [q for q, _ in sets.get("external", [])]}
    if stage == "0":
        return {"eval": [q for q, _ in sets.get("eval", [])]}
    n = int(stage)
    chosen = {name: [q for q, min_n in pairs if min_n <= n] for name, pairs in sets.items()}
    return {name: questions for name, questions in chosen.items() if questions}


def summary(report: dict) -> dict:
    """The parts of an evaluation report the benchmark keeps: overall and per group, without the questions."""
    keep = ("n", "n_answerable", "n_unanswerable", "retrieval", "answers", "refusal", "latency")
    return {**{key: report[key] for key in keep},
            "by_group": {group: {key: block[key] for key in keep} for group, block in report["by_group"].items()}}


def metric_rows(label: str, scores: dict) -> list[list]:
    rows = []
    for group, block in [("all", scores), *sorted(scores["by_group"].items())]:
        values = [block[part][key] for key, part in METRICS]
        rows.append([label, group, block["n"], *["–" if v is None else v for v in values]])
    return rows


# ------------------------------------------------------------------ the run


def run(ns: list[int], external_sample: int | None, work: Path) -> dict:
    grown = GrownCorpus(work)
    embedder = Embedder.from_settings(load_settings())
    embedder.model  # noqa: B018 - loaded before any build is timed
    sets = question_sets(external_sample)
    seed_alone = _assistant(SEED, work / "seed-index", embedder)
    stages = [EXTERNAL_ALONE, "0", *[str(n) for n in sorted(ns)]]
    result = {"machine": machine(), "commit": _commit(), "started": time.strftime("%Y-%m-%d %H:%M"),
              "n": sorted(ns), "external_sample": external_sample, "builds": {}, "gate": {}}
    for position, stage in enumerate(stages):
        assistant, build = build_stage(grown, stage, stages[:position], embedder)
        label = "0" if stage == EXTERNAL_ALONE else stage
        result["builds"][stage] = build
        if stage == "0":
            seed_alone.index()  # the eval set at N=0 is asked of the seed articles alone
            assistant = seed_alone
        for name, questions in stage_sets(stage, sets).items():
            started = time.perf_counter()
            report = evaluate(assistant, questions, use_llm=False, questions_file=QUESTION_SETS[name])
            scores = {**summary(report), "seconds": time.perf_counter() - started}
            result["gate"].setdefault(label, {})[name] = scores
            print(table(["set", "N", "group", "n", *_headers()],
                        [[name, *row] for row in metric_rows(label, scores)]), flush=True)
    result["finished"] = time.strftime("%Y-%m-%d %H:%M")
    return result


def _commit() -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def _headers() -> list[str]:
    return [f"{part} {key}" if part != "retrieval" else key for key, part in METRICS]


def markdown(result: dict) -> str:
    """The result as Markdown tables: quality per set × group × N, then the index builds."""
    rows = []
    for name in QUESTION_SETS:
        for label, sets in sorted(result["gate"].items(), key=lambda item: int(item[0])):
            if name in sets:
                rows += [[name, *row] for row in metric_rows(label, sets[name])]
    quality = table(["set", "N", "group", "n", *_headers()], rows)
    build_rows = []
    for stage, build in result["builds"].items():
        phases = build.get("timings", {})
        build_rows.append([
            "external alone" if stage == EXTERNAL_ALONE else f"N={stage}", build["articles"], build["chunks"],
            build["embedded_chunks"], build["seconds"], build["chunks_per_second"] or "–",
            *[phases.get(p, 0.0) for p in ("plan", "parse", "chunk", "embed", "embed sentences")],
            sum(phases.get(p, 0.0) for p in ("open writer", "write rows", "commit")),
            build["cumulative_seconds"], "reused" if build.get("reused") else build.get("built", ""),
        ])
    builds = table(["index", "articles", "chunks", "embedded", "seconds", "chunks/s", "plan s", "parse s", "chunk s",
                    "embed s (chunks + pooled sentences)", "sentences alone s", "store s",
                    "full build s (sum of steps)", "built"],
                   build_rows)
    head = f"{result['machine']}; commit {result['commit']}; {result['started']}–{result.get('finished', '?')}"
    return f"{head}\n\n{quality}\n\n{builds}\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench grown", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", default="300,1000,3000",
                        help="comma-separated numbers of news articles to grow through (default 300,1000,3000)")
    parser.add_argument("--external-sample", type=int, metavar="K",
                        help="ask a fixed, evenly spread sample of about K external questions instead of all 909")
    parser.add_argument("--out", type=Path, help="write the result as JSON here (default: WORK/grown/result-<N>.json)")
    parser.add_argument("--thresholds", type=Path, help="JSON of minimum metrics (see above); exit 1 below them")
    parser.add_argument("--work", type=Path, default=WORK / "grown", help="corpus, index and saved indexes (outside the repo)")
    args = parser.parse_args(argv)
    try:
        ns = sorted({int(part) for part in args.n.split(",") if part.strip()})
    except ValueError:
        parser.error(f"--n takes comma-separated whole numbers, not {args.n!r}")
    if not ns or min(ns) < 1:
        parser.error("--n needs at least one number of news articles, each at least 1")
    thresholds = load_thresholds(args.thresholds) if args.thresholds else {}

    result = run(ns, args.external_sample, args.work)
    out = args.out or args.work / f"result-{'-'.join(map(str, ns))}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(f"\n{markdown(result)}\nresult: {out}")
    failures = check_thresholds(result["gate"], thresholds)
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr)
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
