"""What every benchmark needs: where the shared data is, a work folder, settings, and a table printer."""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path

from rag.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
SHARED_BENCH = Path(os.environ.get("RAG_SHARED_BENCH", ROOT.parent / "shared" / "bench" / "xquad-facqa"))
WORK = Path(os.environ.get("RAG_BENCH_WORK", Path.home() / ".cache" / "rag-news" / "bench"))


def bench_settings(name: str, corpus: Path, **overrides) -> Settings:
    """Settings for a benchmark index kept in its own folder under the work directory (or ``index=`` given)."""
    return load_settings(**{"corpus": corpus, "index": WORK / name / "index", **overrides})


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}"


def median(values: list[float]) -> float:
    return statistics.median(values)


def table(headers: list[str], rows: list[list]) -> str:
    """A Markdown table, ready to paste into bench/README.md."""
    def cell(value):
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
