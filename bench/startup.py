"""CLI start-up: each command as a fresh process, wall time, and what it imported.

    python -m bench startup [--quick] [--runs N] [--against REV] [--names-corpus FILE] [--names-only]

The commands of issue 13 on the seed corpus (``./corpus``, 5 articles): ``rag
index`` with nothing to do, ``rag search`` (a question in English, and one in
Vietnamese), ``rag ask --no-llm``.  Each run is a new ``python`` process (the
CLI as the README runs it), on an index built once beforehand into the work
folder (untimed), so every timed run is the "nothing to index" case; the page
cache is warm, the process is cold.

``--against REV`` also runs the same commands with the code of ``REV`` (a git
revision, checked out with ``git worktree`` into the work folder for the run), in
alternation with the working tree's, so both see the same load; the table
gives medians and the ratio.  One ``python -X importtime`` run per command and
version names the costliest imports, and an ``atexit`` hook lists which heavy
packages each command loaded.

The name vocabulary (``NameVocabulary``), which a first question used to build
from every article of the index and now asks of the index, is timed in-process
on the seed corpus and on the news corpus (``../shared/bench/news``): what a
first question pays for it, and what computing it costs at index time.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from .common import ROOT, WORK, machine, median, table

SEED = ROOT / "corpus"
NEWS = ROOT.parent / "shared" / "bench" / "news" / "articles.jsonl"
COMMANDS = {
    "index": ["index"],
    "search": ["search", "Who is the mayor of Daejeon?"],
    # written with Vietnamese-only letters: decided without lingua's models (rag.language.written_in_vietnamese)
    "search (vi)": ["search", "Ai là thị trưởng thành phố Daejeon?"],
    "ask --no-llm": ["ask", "Who is the mayor of Daejeon?", "--no-llm"],
}
HEAVY = ("torch", "sentence_transformers", "transformers", "onnxruntime", "tokenizers", "gradio", "openai",
         "lingua", "faiss", "bm25s", "scipy", "sklearn", "pandas", "tiktoken", "bs4")
# Runs the CLI, then (atexit also runs after typer's sys.exit) prints the heavy packages it imported.
RUNNER = (
    "import atexit, sys\n"
    "atexit.register(lambda: print('LOADED ' + ' '.join(m for m in {heavy!r} if m in sys.modules), file=sys.stderr))\n"
    "from rag.cli import main\n"
    "main()\n"
)


@dataclass
class Version:
    label: str
    root: Path  # what goes on PYTHONPATH
    index: Path


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench startup")
    parser.add_argument("--quick", action="store_true", help="3 runs per command")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per command and version")
    parser.add_argument("--against", metavar="REV", help="also run the code of this git revision, alternating")
    parser.add_argument("--names-corpus", type=Path, default=NEWS, help="JSONL corpus for the name vocabulary timing")
    parser.add_argument("--names-articles", type=int, default=1000, help="articles of it to time")
    parser.add_argument("--names-only", action="store_true", help="only the name vocabulary timing, no CLI runs")
    args = parser.parse_args(argv)
    runs = 3 if args.quick else args.runs

    work = WORK / "startup"
    with ExitStack() as stack:
        versions = [Version("this tree", ROOT, work / "index-tree")]
        if args.against:
            old = stack.enter_context(checkout(args.against, work / "against"))
            versions.insert(0, Version(args.against, old, work / "index-against"))
        if not args.names_only:
            measure(versions, runs, work)
    print("\nname vocabulary (stored at index time; a first question opens the index and asks it):")
    for label, corpus, limit in (("seed corpus", SEED, None), (args.names_corpus.name, args.names_corpus,
                                                                args.names_articles)):
        if corpus.exists():
            n, per_article, seconds = time_name_vocabulary(corpus, limit)
            print(f"  {label}: {n} articles; first question's names: median {seconds * 1000:.0f} ms "
                  f"({len(NAME_QUESTIONS)} questions); at index time {per_article * 1000:.1f} ms an article")
    print(f"\nload at the end {os.getloadavg()[0]:.1f}")


def measure(versions: list[Version], runs: int, work: Path) -> None:
    """Build each version's index, then time the commands in alternation and print the tables."""
    print(f"# CLI start-up, {machine()}; {runs} runs per command and version; load {os.getloadavg()[0]:.1f}\n")
    for version in versions:
        build(version, work)

    walls: dict[tuple[str, str], list[float]] = {}
    cpus: dict[tuple[str, str], list[float]] = {}
    loaded: dict[tuple[str, str], str] = {}
    for _ in range(runs):
        for name in COMMANDS:  # alternate versions run by run, so load changes hit both alike
            for version in versions:
                seconds, cpu, modules = run(version, name, work)
                walls.setdefault((name, version.label), []).append(seconds)
                cpus.setdefault((name, version.label), []).append(cpu)
                loaded[(name, version.label)] = modules
    print(results_table(versions, walls, cpus, loaded))
    for version in versions:
        for name in COMMANDS:
            print(f"\nslowest imports, `rag {name}`, {version.label} (cumulative ms, top-level packages):")
            print("  " + ", ".join(f"{pkg} {ms:.0f}" for pkg, ms in import_offenders(version, name, work)))


@contextmanager
def checkout(rev: str, folder: Path) -> Iterator[Path]:
    """The code of ``rev`` in a detached git worktree for the run, removed afterwards."""
    if folder.exists():
        git("worktree", "remove", "--force", str(folder))
    git("worktree", "add", "--detach", str(folder), git("rev-parse", rev))
    try:
        yield folder
    finally:
        git("worktree", "remove", "--force", str(folder))


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True).stdout.strip()


def build(version: Version, work: Path) -> None:
    """Bring the version's index up to date (untimed), and warm the page cache with one run of each command."""
    started = time.perf_counter()
    cli(version, ["index"], work, check=True)
    for name in COMMANDS:
        cli(version, COMMANDS[name], work, check=True)
    print(f"{version.label}: index ready and commands warmed in {time.perf_counter() - started:.0f} s")


def environment(version: Version) -> dict[str, str]:
    """The caller's environment without RAG_/OPENAI_ settings (no LLM, no config file), importing ``version``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("RAG_", "OPENAI_"))}
    return env | {"PYTHONPATH": str(version.root), "HF_HUB_OFFLINE": "1"}


def cli(version: Version, args: list[str], work: Path, *, check: bool = False, python_flags: tuple[str, ...] = ()):
    """Run ``rag ARGS`` as a new process, from an empty folder (so no rag.toml is read); return the finished process."""
    cwd = work / "cwd"
    cwd.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, *python_flags, "-c", RUNNER.format(heavy=HEAVY), *args,
               "--corpus", str(SEED), "--index", str(version.index)]
    done = subprocess.run(command, cwd=cwd, env=environment(version), capture_output=True, text=True)
    if check and done.returncode != 0:
        raise SystemExit(f"{version.label}: rag {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done


def run(version: Version, name: str, work: Path) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + system, the better figure on a loaded machine) and heavy imports of a run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = cli(version, COMMANDS[name], work, check=True)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    modules = next((line[len("LOADED "):] for line in done.stderr.splitlines() if line.startswith("LOADED ")), "?")
    return seconds, cpu, modules


def results_table(versions: list[Version], walls: dict, cpus: dict, loaded: dict) -> str:
    headers = ["command", *[f"{v.label}: wall s, median (min–max) · CPU s" for v in versions]]
    if len(versions) == 2:
        headers += ["speed-up, wall", "CPU"]
    rows = []
    for name in COMMANDS:
        row = [f"`rag {name}`"]
        for version in versions:
            values = walls[(name, version.label)]
            row.append(f"{median(values):.2f} ({min(values):.2f}–{max(values):.2f}) · "
                       f"{median(cpus[(name, version.label)]):.2f}")
        if len(versions) == 2:
            old, new = ((name, v.label) for v in versions)
            row += [f"{median(walls[old]) / median(walls[new]):.1f}×", f"{median(cpus[old]) / median(cpus[new]):.1f}×"]
        rows.append(row)
    loaded_rows = [[f"`rag {name}`", *[loaded[(name, v.label)] or "–" for v in versions]] for name in COMMANDS]
    return (table(headers, rows) + "\n\nheavy packages imported:\n\n"
            + table(["command", *[v.label for v in versions]], loaded_rows))


IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def import_offenders(version: Version, name: str, work: Path, top: int = 8) -> list[tuple[str, float]]:
    """The top-level packages whose import took longest (cumulative, as ``-X importtime`` reports them)."""
    done = cli(version, COMMANDS[name], work, python_flags=("-X", "importtime"))
    totals: dict[str, float] = {}
    for match in IMPORT_LINE.finditer(done.stderr):
        _, cumulative, indent, module = match.groups()
        if len(indent) == 1:  # imported by the program itself, not by another package
            package = module.split(".")[0]
            totals[package] = totals.get(package, 0.0) + int(cumulative) / 1000
    return sorted(totals.items(), key=lambda item: -item[1])[:top]


NAME_QUESTIONS = ("Who is the mayor of Daejeon?", "What did Thanh Hoa agree with Yamanashi?",
                  "Kapan Hai Phong menandatangani perjanjian kerja sama dengan Incheon?")


def time_name_vocabulary(corpus: Path, limit: int | None, repeats: int = 5) -> tuple[int, float, float]:
    """Index the first ``limit`` articles of ``corpus`` with their vocabularies (random vectors: the vocabulary
    reads only text), then time what a new process's first question pays for names: opening the index and the
    vocabulary's three calls (unknown names, the articles naming them, whether the cited ones mention none)
    for a few questions.  Returns the articles, the index-time seconds an article's vocabulary costs, and the
    median seconds of a first question's names."""
    import numpy as np  # noqa: PLC0415 - only this part needs these
    from rag.chunking import Chunk  # noqa: PLC0415
    from rag.corpus import iter_sources, parse_source  # noqa: PLC0415
    from rag.names import NameVocabulary, article_vocabulary  # noqa: PLC0415
    from rag.store import Manifest, SentenceVectors  # noqa: PLC0415
    from rag.stores import backend_for, open_store  # noqa: PLC0415

    sources = (item for item in iter_sources(corpus, 50_000_000) if not isinstance(item, Exception))
    articles = list(map(parse_source, islice(sources, limit)))
    article_vocabulary("", "Warm-up: Thanh Hóa compiles the gazetteer once, as every process does.")
    started = time.perf_counter()
    vocabularies = [article_vocabulary(a.title, a.text) for a in articles]
    per_article = (time.perf_counter() - started) / len(articles)
    index = WORK / "startup" / f"names-{corpus.stem}-{len(articles)}"
    shutil.rmtree(index, ignore_errors=True)
    manifest = Manifest(model="synthetic", model_fingerprint="synthetic-8", dim=8, chunk_tokens=220,
                        chunk_overlap=40, encoding="o200k_base", parser_version="1")
    vectors = np.random.default_rng(0).standard_normal((len(articles), 8)).astype(np.float32)
    with backend_for(index).writer(manifest, start_empty=True, ivf_threshold=50_000) as writer:
        for article, vocabulary, vector in zip(articles, vocabularies, vectors / 3):
            chunk = Chunk(article.doc_id, 0, article.text, 0, len(article.text), 1, article.title,
                          sentences=((0, len(article.text)),))
            writer.add_article(article, [chunk], vector[None, :], [SentenceVectors([(0, len(article.text))],
                               vector[None, :], vector[None, :])], [(frozenset(), [])], vocabulary)
        writer.commit()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        store = open_store(index)
        names = NameVocabulary(store)
        for question in NAME_QUESTIONS:
            names.unknown_names(question)
            names.mention_none(question, [a.doc_id for a in articles[:5]])
            names.articles_naming(question)
        seconds.append(time.perf_counter() - started)
        store.close()
    return len(articles), per_article, median(seconds)
