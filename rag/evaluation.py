"""Measuring retrieval (and, later, answers) against a set of questions with known answers.

Two question formats are read: the project's own (``gold_docs``) and the
external benchmark's (``passage_ids`` and ``passage_lang``), so one command
measures the project on data nobody here wrote.

Retrieval metrics are at article level: a retrieved chunk counts for its
article, and the articles are ranked by their best chunk.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from .retrieval import Hit


@dataclass(frozen=True)
class EvalQuestion:
    id: str
    question: str
    lang: str
    answerable: bool
    gold_docs: tuple[str, ...]
    answers: tuple[str, ...]
    doc_lang: str | None = None  # language of the gold articles, when the set says

    @property
    def group(self) -> str:
        """``question language→article language``, e.g. ``en→vi``."""
        return f"{self.lang}→{self.doc_lang}" if self.doc_lang else self.lang


def load_questions(path: Path) -> list[EvalQuestion]:
    questions = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            gold = record.get("gold_docs", record.get("passage_ids", []))
            questions.append(
                EvalQuestion(
                    id=str(record["id"]),
                    question=record["question"],
                    lang=record["lang"],
                    answerable=record.get("answerable", bool(gold)),
                    gold_docs=tuple(gold),
                    answers=tuple(record.get("answers", [])),
                    doc_lang=record.get("passage_lang"),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not a valid question record ({exc})") from exc
    return questions


def ranked_articles(hits: list[Hit]) -> list[str]:
    """Article ids in the order of their best-ranked chunk."""
    seen: dict[str, None] = {}
    for hit in hits:
        seen.setdefault(hit.passage.doc_id, None)
    return list(seen)


def recall_at(ranked: list[str], gold: tuple[str, ...], k: int) -> float:
    """Share of the gold articles found among the first ``k`` articles."""
    if not gold:
        return 0.0
    return len(set(ranked[:k]) & set(gold)) / len(gold)


def reciprocal_rank(ranked: list[str], gold: tuple[str, ...], k: int) -> float:
    for rank, doc_id in enumerate(ranked[:k], start=1):
        if doc_id in gold:
            return 1.0 / rank
    return 0.0


def ndcg_at(ranked: list[str], gold: tuple[str, ...], k: int) -> float:
    """Binary-relevance nDCG: every gold article is equally relevant."""
    dcg = sum(1.0 / math.log2(rank + 1) for rank, doc_id in enumerate(ranked[:k], start=1) if doc_id in gold)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(gold), k) + 1))
    return dcg / ideal if ideal else 0.0


def retrieval_scores(ranked: list[str], gold: tuple[str, ...], ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    scores = {f"recall@{k}": recall_at(ranked, gold, k) for k in ks}
    scores["mrr@10"] = reciprocal_rank(ranked, gold, 10)
    scores["ndcg@10"] = ndcg_at(ranked, gold, 10)
    return scores


def mean_scores(rows: list[dict[str, float]]) -> dict[str, float]:
    if not rows:
        return {}
    return {key: sum(row[key] for row in rows) / len(rows) for key in rows[0]}
