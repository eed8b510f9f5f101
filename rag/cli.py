"""The ``rag`` command: a thin layer over :class:`rag.assistant.Assistant`.

Each command imports what it uses when it runs: a process runs one command,
and importing the whole library (openai, the evaluation, Gradio for ``rag
ui``) before parsing the arguments cost every command seconds (bench/README.md §10).
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from .config import load_settings
from .errors import UserError
from .filters import SearchFilters

if TYPE_CHECKING:
    from .answers import Answer
    from .assistant import Assistant

app = typer.Typer(
    help="Ask questions about a multilingual news corpus, with cited answers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

CorpusOption = Annotated[
    Optional[Path], typer.Option("--corpus", help="Folder of articles or a JSONL file [env: RAG_CORPUS]")
]
IndexOption = Annotated[
    Optional[str], typer.Option("--index", help="Index folder, or a postgresql:// URL [env: RAG_INDEX]")
]
LangOption = Annotated[Optional[str], typer.Option("--lang", help="Only articles in these languages (vi,id,ms,en)")]
SinceOption = Annotated[Optional[str], typer.Option("--since", help="Only articles dated on or after YYYY-MM-DD")]
UntilOption = Annotated[Optional[str], typer.Option("--until", help="Only articles dated on or before YYYY-MM-DD")]
SourceOption = Annotated[Optional[str], typer.Option("--source", help="Only articles from these sites (kompas.com,...)")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text")]


def make_assistant(corpus: Path | None, index: str | None) -> Assistant:
    from .assistant import Assistant

    return Assistant(load_settings(corpus=corpus, index=index))


def fail(message: str) -> None:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(1)


def report_skipped(errors: list[str]) -> None:
    for error in errors:
        typer.secho(f"skipped: {error}", err=True, fg=typer.colors.YELLOW)


@app.command()
def index(
    corpus: CorpusOption = None,
    index: IndexOption = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Re-embed everything from scratch")] = False,
) -> None:
    """Build the index, or update it with the articles added, changed or removed since the last build."""
    try:
        assistant = make_assistant(corpus, index)
        report = assistant.index(rebuild=rebuild, progress=sys.stderr.isatty(), load_queries=False)
    except UserError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted; the previous index is unchanged")
    report_skipped(report.errors)
    typer.echo(report.summary())


@app.command()
def search(
    question: Annotated[str, typer.Argument(help="What to look for, in any language")],
    k: Annotated[int, typer.Option("-k", "--top-k", min=1, max=100, help="How many passages")] = 5,
    as_json: JsonOption = False,
    corpus: CorpusOption = None,
    index: IndexOption = None,
    lang: LangOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    source: SourceOption = None,
) -> None:
    """Show the passages that best match a question (updates the index first if needed)."""
    from .language import language_name

    try:
        filters = SearchFilters.of(languages=lang, since=since, until=until, sources=source)
        hits = prepared_assistant(corpus, index).search(question, k, filters)
    except UserError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps([hit.to_dict() for hit in hits], ensure_ascii=False, indent=2))
        return
    if not hits:
        typer.echo("No passages found: no article passes the filters." if filters
                   else "No passages found: the index is empty.")
    for hit in hits:
        p = hit.passage
        typer.secho(f"{hit.rank}. [{hit.score:.3f}] {p.title}", bold=True)
        typer.echo(f"   {p.doc_id} · {language_name(p.lang)}" + (f" · {p.url}" if p.url else ""))
        typer.echo(textwrap.indent(textwrap.shorten(p.text, 300, placeholder=" …"), "   "))
        typer.echo()


def prepared_assistant(corpus: Path | None, index: str | None) -> Assistant:
    """An assistant whose index is up to date (built on first use), reporting what it changed."""
    assistant = make_assistant(corpus, index)
    report = assistant.index(progress=sys.stderr.isatty())
    if report.changed_anything or report.rebuilt:
        typer.echo(report.summary(), err=True)
    report_skipped(report.errors)
    return assistant


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="Your question, in English, Vietnamese, Indonesian, ...")],
    as_json: JsonOption = False,
    no_llm: Annotated[bool, typer.Option("--no-llm", help="Answer extractively even if an LLM is configured")] = False,
    corpus: CorpusOption = None,
    index: IndexOption = None,
    lang: LangOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    source: SourceOption = None,
) -> None:
    """Answer a question from the articles, citing the passages it relies on."""
    from .answers import FinalAnswer

    try:
        filters = SearchFilters.of(languages=lang, since=since, until=until, sources=source)
        assistant = prepared_assistant(corpus, index)
        streamed = ""
        for event in assistant.answer_stream(question, use_llm=False if no_llm else None, filters=filters):
            if isinstance(event, FinalAnswer):
                final = event.answer
            elif not as_json:
                typer.echo(event.text, nl=False)  # stream LLM text as it arrives
                streamed += event.text
    except UserError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps(final.to_dict(), ensure_ascii=False, indent=2))
        return
    if streamed:
        typer.echo("\n")
    print_answer(final, text_already_shown=streamed.strip() == final.text)


def print_answer(answer: Answer, text_already_shown: bool) -> None:
    """Notes, then the answer unless it was streamed unchanged (the check flags, moves or drops markers), then sources."""
    from .language import language_name

    for note in answer.notes:
        typer.secho(note, fg=typer.colors.YELLOW)
    if not text_already_shown:
        typer.echo(answer.text)
    if answer.citations:
        typer.echo("\nSources:")
    for citation in answer.citations:
        p = citation.hit.passage
        flag = "" if citation.supported else "  ⚠ not backed by this passage"
        typer.secho(f"[{citation.n}] {p.title} ({language_name(p.lang)}, {p.doc_id}){flag}", bold=True)
        if p.url:
            typer.echo(f"    {p.url}")
        typer.echo(textwrap.indent(textwrap.fill(f"“{citation.quote}”", 100), "    "))


@app.command("eval")
def eval_command(
    questions: Annotated[Path, typer.Option("--questions", help="Question set (JSONL)")] = Path("eval/questions.jsonl"),
    out: Annotated[Path, typer.Option("--out", help="Folder for the reports")] = Path("eval/reports"),
    no_llm: Annotated[bool, typer.Option("--no-llm", help="Evaluate extractive answers even if an LLM is configured")] = False,
    k: Annotated[int, typer.Option("-k", min=1, max=100, help="Chunks retrieved for retrieval metrics")] = 10,
    thresholds: Annotated[Optional[Path], typer.Option("--thresholds", help="Fail below these minimums (JSON)")] = None,
    sample: Annotated[Optional[int], typer.Option(
        "--sample", min=1, help="Only this many questions: every unanswerable one, answerable ones spread over the languages")
    ] = None,
    as_json: JsonOption = False,
    compare: Annotated[
        Optional[tuple[Path, Path]], typer.Option("--compare", help="Compare two JSON reports A B and exit")
    ] = None,
    corpus: CorpusOption = None,
    index: IndexOption = None,
) -> None:
    """Measure retrieval and answers on a question set; write JSON and Markdown reports."""
    from .evaluation import check_thresholds, evaluate, load_questions, load_thresholds, stratified_sample, write_reports
    from .evaluation import compare as compare_reports

    if compare:
        typer.echo(compare_reports(*compare))
        return
    try:
        assistant = prepared_assistant(corpus, index)
        chosen = load_questions(questions)
        chosen = stratified_sample(chosen, sample) if sample else chosen
        report = evaluate(assistant, chosen, use_llm=False if no_llm else None, k=k,
                          progress=sys.stderr.isatty(), questions_file=questions)
        limits = load_thresholds(thresholds) if thresholds else {}
    except (UserError, ValueError, OSError) as exc:
        fail(str(exc))
    json_path, md_path = write_reports(report, out)
    if as_json:
        typer.echo(json.dumps({key: value for key, value in report.items() if key != "questions"}, ensure_ascii=False, indent=2))
    else:
        answers, refusal = report["answers"], report["refusal"]
        typer.echo(f"{report['n']} questions, {report['mode']} answers: recall@5 {report['retrieval']['recall@5']:.3f}, "
                   f"accuracy {answers['accuracy'] or 0:.3f}, refusal accuracy {refusal['accuracy'] or 0:.3f}")
    typer.echo(f"wrote {json_path} and {md_path}", err=True)
    failures = check_thresholds(report, limits)
    for failure in failures:
        typer.secho(f"below threshold: {failure}", err=True, fg=typer.colors.RED)
    if failures:
        raise typer.Exit(1)


HostOption = Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0 opens it to the network)")]
PortOption = Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on")]
NoAuthOption = Annotated[bool, typer.Option("--no-auth", help="Serve without API keys even on a network address")]


@app.command()
def serve(
    host: HostOption = "127.0.0.1",
    port: PortOption = 7860,
    no_auth: NoAuthOption = False,
    corpus: CorpusOption = None,
    index: IndexOption = None,
) -> None:
    """Serve the browser chat at http://HOST:PORT/ and the API at /v1 (docs at /docs); keys from RAG_API_KEYS."""
    from .api.app import serve as run_server  # imported here: FastAPI and Gradio take seconds to import

    try:
        run_server(load_settings(corpus=corpus, index=index), host=host, port=port, no_auth=no_auth)
    except UserError as exc:
        fail(str(exc))


# `rag ui` (round 1's command) is the same server under its old name
app.command("ui", help="The same as `rag serve` (the chat at /, the API at /v1).")(serve)


def main() -> None:  # pragma: no cover - entry point
    app()
