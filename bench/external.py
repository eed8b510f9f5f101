"""Retrieval quality on the external benchmark (XQuAD vi/en→vi, FacQA id), per question group.

    python -m bench external [--quick] [--rebuild] [--vary SETTING VALUE ...] [--chunk-tokens N]
                             [--postgres] [--rankings FILE] [--unaccented] [--lower]

Indexes ``passages.jsonl`` with the project's own pipeline, asks every question
through the same search the CLI uses, and prints recall@1/5/20 per group.
``--vary`` scores several values of one retrieval setting (``lexical_weight``,
``language_calibration``, ``same_language_calibration``, ``same_language_unnamed_share``, ``sentence_weight``,
``rerank_candidates``, ``candidates``, ``name_weight``, ``name_candidates``, ``max_per_article``,
``lexical_words_weight``, ``rerank_sentences_alone``) on the same index, e.g. ``--vary sentence_weight 0 1``.
``--postgres`` indexes into a private PostgreSQL (``pgserver``, under the work folder) instead of the
embedded store; ``--rankings FILE`` saves each question's top 20 articles, so two runs can be compared
question by question.  ``--unaccented`` asks the Vietnamese questions without their diacritics, as people
often type them (the other groups are left out); ``--lower`` asks every question in lower case.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path

from pydantic import TypeAdapter

from rag.assistant import Assistant
from rag.config import Settings
from rag.evaluation import load_questions, ranked_articles, recall_at
from rag.language import strip_diacritics

from .common import SHARED_BENCH, WORK, bench_settings, machine, table

KS = (1, 5, 20)
VARIABLE = ("lexical_weight", "language_calibration", "same_language_calibration", "same_language_unnamed_share",
            "sentence_weight", "rerank_candidates", "candidates", "name_weight", "name_candidates", "max_per_article",
            "lexical_words_weight", "rerank_sentences_alone")


def run(quick: bool = False, rebuild: bool = False, vary: tuple[str, list[str]] | None = None,
        rankings: Path | None = None, unaccented: bool = False, lower: bool = False, **overrides) -> None:
    """Score each value of the varied setting (default: the configured settings) on the same index."""
    assistant = Assistant(bench_settings("external", SHARED_BENCH / "passages.jsonl", **overrides))
    ranked_by_question: dict[str, list[str]] = {}
    print(assistant.index(rebuild=rebuild).summary())
    questions = load_questions(SHARED_BENCH / "questions.jsonl")
    if unaccented:
        questions = [replace(q, question=strip_diacritics(q.question)) for q in questions if q.lang == "vi"]
    if lower:
        questions = [replace(q, question=q.question.lower()) for q in questions]
    if quick:
        questions = questions[::6]
    name, values = vary or ("lexical_weight", [assistant.settings.lexical_weight])
    base = assistant.settings
    rows = []
    for value in values:
        typed = TypeAdapter(Settings.model_fields[name].annotation).validate_python(value)  # "false" is False
        assistant.settings = base.model_copy(update={name: typed})
        scores: dict[str, list[list[float]]] = defaultdict(list)
        started = time.perf_counter()
        for question in questions:
            ranked = ranked_articles(assistant.search(question.question, k=max(KS)))
            ranked_by_question[question.question] = ranked
            scores[question.group].append([recall_at(ranked, question.gold_docs, k) for k in KS])
        per_query_ms = (time.perf_counter() - started) / len(questions) * 1000
        for group, group_rows in sorted(scores.items()):
            means = [sum(row[i] for row in group_rows) / len(group_rows) for i in range(len(KS))]
            rows.append([value, group, len(group_rows), *means, per_query_ms])
    print(f"\n{machine()}; {len(questions)} questions\n")
    print(table([name, "group", "n", *[f"recall@{k}" for k in KS], "ms/query (all groups)"], rows))
    if rankings:
        rankings.write_text(json.dumps(ranked_by_question, ensure_ascii=False, indent=0))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="every 6th question only")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the bench index (after a change of chunking)")
    parser.add_argument("--vary", nargs="+", metavar=("SETTING", "VALUE"), help="a retrieval setting and its values")
    parser.add_argument("--chunk-tokens", type=int, help="override the chunk size (rebuilds the bench index)")
    parser.add_argument("--postgres", action="store_true", help="index into a private PostgreSQL (pgserver)")
    parser.add_argument("--rankings", type=Path, help="save each question's ranked articles (JSON) here")
    parser.add_argument("--unaccented", action="store_true", help="only the Vietnamese questions, without diacritics")
    parser.add_argument("--lower", action="store_true", help="every question in lower case")
    args = parser.parse_args(argv)
    if args.vary and (args.vary[0] not in VARIABLE or len(args.vary) < 2):
        parser.error(f"--vary takes one of {', '.join(VARIABLE)} and at least one value")
    vary = (args.vary[0], args.vary[1:]) if args.vary else None
    overrides = {"chunk_tokens": args.chunk_tokens} if args.chunk_tokens else {}
    with ExitStack() as stack:
        if args.postgres:
            overrides["index"] = stack.enter_context(private_database(WORK / "external" / "pgdata", "external"))
        run(quick=args.quick, rebuild=args.rebuild, vary=vary, rankings=args.rankings, unaccented=args.unaccented,
            lower=args.lower, **overrides)


@contextmanager
def private_database(folder: Path, name: str) -> Iterator[str]:
    """The URL of database ``name`` on a private PostgreSQL with pgvector kept in ``folder`` (the test extra's
    ``pgserver``), stopped afterwards; the data stays, so a second run finds its index."""
    import pgserver  # noqa: PLC0415 - only --postgres needs it

    folder.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(folder, cleanup_mode="stop")
    try:
        if "(1 row)" not in server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';"):
            server.psql(f"CREATE DATABASE {name};")
        yield server.get_uri(name)
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
