"""Retrieval quality on the external benchmark (XQuAD vi/en→vi, FacQA id), per question group.

    python -m bench external [--quick]

Indexes ``passages.jsonl`` with the project's own pipeline, asks every question
through the same search the CLI uses, and prints recall@1/5/20 per group.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

from rag.assistant import Assistant
from rag.evaluation import load_questions, ranked_articles, recall_at

from .common import SHARED_BENCH, bench_settings, machine, table

KS = (1, 5, 20)


def run(quick: bool = False, lexical_weights: list[float] | None = None, **overrides) -> None:
    """Score each lexical weight (0 = dense only; default: the configured one) on the same index."""
    assistant = Assistant(bench_settings("external", SHARED_BENCH / "passages.jsonl", **overrides))
    print(assistant.index().summary())
    questions = load_questions(SHARED_BENCH / "questions.jsonl")
    if quick:
        questions = questions[::6]
    rows = []
    for weight in lexical_weights or [assistant.settings.lexical_weight]:
        assistant.settings = assistant.settings.model_copy(update={"lexical_weight": weight})
        scores: dict[str, list[list[float]]] = defaultdict(list)
        started = time.perf_counter()
        for question in questions:
            ranked = ranked_articles(assistant.search(question.question, k=max(KS)))
            scores[question.group].append([recall_at(ranked, question.gold_docs, k) for k in KS])
        per_query_ms = (time.perf_counter() - started) / len(questions) * 1000
        for group, group_rows in sorted(scores.items()):
            means = [sum(row[i] for row in group_rows) / len(group_rows) for i in range(len(KS))]
            rows.append([weight, group, len(group_rows), *means, per_query_ms])
    print(f"\n{machine()}; {len(questions)} questions\n")
    print(table(["lexical weight", "group", "n", *[f"recall@{k}" for k in KS], "ms/query (all groups)"], rows))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="every 6th question only")
    parser.add_argument("--lexical-weights", type=float, nargs="+", help="fusion weights of BM25 to compare")
    parser.add_argument("--chunk-tokens", type=int, help="override the chunk size (rebuilds the bench index)")
    args = parser.parse_args(argv)
    overrides = {"chunk_tokens": args.chunk_tokens} if args.chunk_tokens else {}
    run(quick=args.quick, lexical_weights=args.lexical_weights, **overrides)


if __name__ == "__main__":
    main()
