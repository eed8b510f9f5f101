"""The ``rag`` command: a thin layer over :class:`rag.assistant.Assistant`."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Annotated, Optional

import typer

from .assistant import Assistant
from .config import ConfigError, load_settings
from .corpus import CorpusError
from .embeddings import ModelError
from .language import language_name
from .store import StoreError

app = typer.Typer(
    help="Ask questions about a multilingual news corpus, with cited answers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

CorpusOption = Annotated[
    Optional[Path], typer.Option("--corpus", help="Folder of articles or a JSONL file [env: RAG_CORPUS]")
]
IndexOption = Annotated[Optional[Path], typer.Option("--index", help="Index folder [env: RAG_INDEX]")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text")]
EXPECTED_ERRORS = (ConfigError, CorpusError, StoreError, ModelError)


def make_assistant(corpus: Path | None, index: Path | None) -> Assistant:
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
        report = make_assistant(corpus, index).index(rebuild=rebuild, progress=sys.stderr.isatty())
    except EXPECTED_ERRORS as exc:
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
) -> None:
    """Show the passages that best match a question (updates the index first if needed)."""
    try:
        assistant = make_assistant(corpus, index)
        report = assistant.index(progress=sys.stderr.isatty())
        if report.changed_anything or report.rebuilt:
            typer.echo(report.summary(), err=True)
        report_skipped(report.errors)
        hits = assistant.search(question, k)
    except EXPECTED_ERRORS as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps([hit.to_dict() for hit in hits], ensure_ascii=False, indent=2))
        return
    if not hits:
        typer.echo("No passages found: the index is empty.")
    for hit in hits:
        p = hit.passage
        typer.secho(f"{hit.rank}. [{hit.score:.3f}] {p.title}", bold=True)
        typer.echo(f"   {p.doc_id} · {language_name(p.lang)}" + (f" · {p.url}" if p.url else ""))
        typer.echo(textwrap.indent(textwrap.shorten(p.text, 300, placeholder=" …"), "   "))
        typer.echo()


def main() -> None:  # pragma: no cover - entry point
    app()
