"""Measuring retrieval and answers against a set of questions with known answers.

Two question formats are read: the project's own (``gold_docs``) and the
external benchmark's (``passage_ids`` and ``passage_lang``), so one command
measures the project on data nobody here wrote.

Retrieval metrics are at article level: a retrieved chunk counts for its
article, and the articles are ranked by their best chunk.

Answers are graded three ways: accuracy (an accepted answer string appears in
the answer, ignoring case and accents), SQuAD v1.1 token F1 and exact match;
citations by precision (cited passages from a gold article) and coverage
(answer sentences carrying a ``[n]`` marker).  A refused answer is wrong on an
answerable question and right on an unanswerable one.  :func:`evaluate` builds
the report, :func:`write_reports` writes it as JSON and Markdown,
:func:`compare` sets two reports side by side and :func:`check_thresholds`
gates CI.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import string
import time
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tqdm import tqdm

from .answers import MODE_LLM
from .citations import MARKER, MARKER_PATTERN
from .language import detect_language, fold
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


def stratified_sample(questions: Sequence[EvalQuestion], n: int) -> list[EvalQuestion]:
    """``n`` questions for a slow run (a real LLM takes ~45 s an answer): every unanswerable one, and
    answerable ones evenly spaced within each question language, the languages in proportion.

    Every unanswerable question is kept because refusals are the rarest and most telling cases;
    the spacing is fixed by the set's order, so two runs (two prompts) get the same questions.
    """
    unanswerable = [q for q in questions if not q.answerable]
    answerable = [q for q in questions if q.answerable]
    room = max(n - len(unanswerable), 0)
    by_lang: dict[str, list[EvalQuestion]] = {}
    for question in answerable:
        by_lang.setdefault(question.lang, []).append(question)
    shares = {lang: room * len(group) / max(len(answerable), 1) for lang, group in by_lang.items()}
    counts = {lang: math.floor(share) for lang, share in shares.items()}
    for lang in sorted(shares, key=lambda lang: counts[lang] - shares[lang])[: room - sum(counts.values())]:
        counts[lang] += 1  # largest remainders first
    keep = {q.id for q in unanswerable}
    for lang, group in by_lang.items():
        step = len(group) / counts[lang] if counts[lang] else 0
        keep.update(group[int(i * step)].id for i in range(counts[lang]))
    return [q for q in questions if q.id in keep]


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


# --------------------------------------------------------------------- answer metrics

# end of a sentence: terminal punctuation, closing quotes/brackets, then any citation markers
_SENTENCE_END = re.compile(rf"[.!?…。！？]+[\"'”’»)]*(?:\s*{MARKER_PATTERN})*(?=\s|$)")
_LATIN_WORD_CHAR = re.compile(r"[0-9a-z]")


def strip_citation_markers(text: str) -> str:
    """``Shin Sang Jin [1].`` → ``Shin Sang Jin.``: markers are not part of what is graded."""
    return re.sub(rf"\s*{MARKER_PATTERN}", "", text)


def answer_contains(answer_text: str, answers: Iterable[str]) -> bool:
    """An expected string appears in the answer, ignoring case, accents and runs of whitespace.

    The match must not start or end inside a word, so ``14`` is not found in ``2014``.
    """
    haystack = " ".join(fold(answer_text).split())
    for expected in answers:
        needle = " ".join(fold(expected).split())
        if not needle:
            continue
        before = r"(?<![0-9a-z])" if _LATIN_WORD_CHAR.match(needle[0]) else ""
        after = r"(?![0-9a-z])" if _LATIN_WORD_CHAR.match(needle[-1]) else ""
        if re.search(before + re.escape(needle) + after, haystack):
            return True
    return False


def squad_normalize(text: str) -> str:
    """SQuAD v1.1 ``normalize_answer``: lower case, drop punctuation, articles and extra whitespace.

    Punctuation is ASCII punctuation (as in SQuAD) plus every Unicode punctuation
    character (as in MLQA's script), so Vietnamese quotes and dashes go too.
    """
    text = text.lower()
    text = "".join(ch for ch in text if ch not in string.punctuation and not unicodedata.category(ch).startswith("P"))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _token_f1(prediction: str, truth: str) -> float:
    predicted = squad_normalize(prediction).split()
    expected = squad_normalize(truth).split()
    same = sum((Counter(predicted) & Counter(expected)).values())
    if same == 0:
        return 0.0
    precision = same / len(predicted)
    recall = same / len(expected)
    return 2 * precision * recall / (precision + recall)


def squad_f1(prediction: str, truths: Iterable[str]) -> float:
    """SQuAD token F1, the best over the accepted answers (0 when there are none)."""
    return max((_token_f1(prediction, truth) for truth in truths), default=0.0)


def squad_em(prediction: str, truths: Iterable[str]) -> float:
    """SQuAD exact match (1.0 or 0.0) after normalisation, the best over the accepted answers."""
    normalized = squad_normalize(prediction)
    return max((float(normalized == squad_normalize(truth)) for truth in truths), default=0.0)


def citation_precision(cited_doc_ids: Sequence[str], gold_docs: Iterable[str]) -> float | None:
    """Share of the cited passages that belong to a gold article; ``None`` when nothing is cited."""
    if not cited_doc_ids:
        return None
    gold = set(gold_docs)
    return sum(doc_id in gold for doc_id in cited_doc_ids) / len(cited_doc_ids)


def split_sentences(text: str) -> list[str]:
    """Sentences of an answer, each keeping the citation markers that follow its full stop.

    Lines are split first (bullet lists), then at terminal punctuation followed by
    whitespace.  A piece holding only markers (``[1]`` on its own line) joins the
    sentence before it.
    """
    sentences: list[str] = []

    def add(piece: str) -> None:
        piece = piece.strip()
        if not piece:
            return
        words = MARKER.sub("", piece)
        if not any(ch.isalnum() for ch in words):
            if MARKER.search(piece) and sentences:
                sentences[-1] = f"{sentences[-1]} {piece}"
            return
        sentences.append(piece)

    for line in text.splitlines():
        start = 0
        for match in _SENTENCE_END.finditer(line):
            add(line[start:match.end()])
            start = match.end()
        add(line[start:])
    return sentences


def citation_coverage(answer_text: str) -> float:
    """Share of the answer's sentences that carry a citation marker (``[1]``, ``[2][3]``, ``[1, 2]``)."""
    sentences = split_sentences(answer_text)
    if not sentences:
        return 0.0
    return sum(bool(MARKER.search(s)) for s in sentences) / len(sentences)


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q``-th percentile (0–100), interpolating linearly between ranks (NumPy's default).

    ``None`` for no values.
    """
    ordered = sorted(values)
    if not ordered:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be between 0 and 100, not {q}")
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# --------------------------------------------------------------------- running an evaluation

LANGUAGE_MIN_WORDS = 4  # shorter generated answers are not scored for language
RETRIEVAL_KEYS = ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10")
ANSWER_KEYS = ("accuracy", "f1", "em", "citation_precision", "citation_coverage", "language_match",
               "unsupported_citations")
REFUSAL_KEYS = ("accuracy", "false_refusal_rate")
NO_GOLD = "none"  # article-language bucket of the questions without gold articles (unanswerable)
_SECRET_FIELDS = re.compile(r"api_key|secret|password|credential", re.IGNORECASE)


def evaluate(
    assistant,
    questions: Sequence[EvalQuestion],
    *,
    use_llm: bool | None = None,
    k: int = 10,
    progress: bool = True,
    questions_file: str | Path | None = None,
) -> dict:
    """Ask every question, score retrieval and answers, and return the report (see :func:`write_reports`).

    ``assistant`` needs ``search(question, k) -> list[Hit]``,
    ``answer(question, use_llm=...) -> Answer``, ``settings`` and ``store``
    (``manifest``, ``article(doc_id)``).  Retrieval is scored with its own
    search for ``k`` chunks; answer metrics cover answerable questions, refusal
    metrics both kinds.  An exception raised while answering one question is
    recorded on that question (``error``) and counted as a wrong answer.
    """
    if not questions:
        raise ValueError("no questions to evaluate")
    store = assistant.store
    article_langs: dict[str, str | None] = {}

    def article_lang(doc_id: str) -> str | None:
        if doc_id not in article_langs:
            article = store.article(doc_id)
            article_langs[doc_id] = article.lang if article is not None else None
        return article_langs[doc_id]

    records = []
    missing_gold: set[str] = set()
    for question in tqdm(questions, desc="evaluating", unit="question", disable=not progress):
        gold_langs = {doc_id: article_lang(doc_id) for doc_id in question.gold_docs}
        missing_gold.update(doc_id for doc_id, lang in gold_langs.items() if lang is None)
        started = time.perf_counter()
        hits = assistant.search(question.question, k)
        search_seconds = time.perf_counter() - started
        started = time.perf_counter()
        try:
            answer = assistant.answer(question.question, use_llm=use_llm)
            error = None
        except Exception as exc:  # noqa: BLE001 - one failing question must not lose a long run
            answer, error = None, f"{type(exc).__name__}: {exc}"
        answer_seconds = time.perf_counter() - started
        records.append(_score_question(question, hits, answer, error, gold_langs, search_seconds, answer_seconds))

    modes = Counter(r["mode"] for r in records if r["mode"])
    report = {
        "timestamp": datetime.now().astimezone().isoformat(timespec="seconds"),
        "questions_file": str(questions_file) if questions_file is not None else None,
        "mode": modes.most_common(1)[0][0] if modes else None,
        "modes": dict(modes),
        "k": k,
        "config": settings_dict(assistant.settings),
        "manifest": _json_safe(store.manifest),
        **_aggregate(records),
        "errors": sum(r["error"] is not None for r in records),
        "missing_gold_docs": sorted(missing_gold),
        "by_question_lang": _grouped(records, "lang"),
        "by_doc_lang": _grouped(records, "doc_lang"),
        "by_group": _grouped(records, "group"),
        "questions": records,
    }
    return report


def _score_question(question: EvalQuestion, hits: list[Hit], answer, error: str | None,
                    gold_langs: dict[str, str | None], search_seconds: float, answer_seconds: float) -> dict:
    ranked = ranked_articles(hits)[:10]
    text = answer.text if answer is not None else ""
    refused = bool(answer.refused) if answer is not None else False
    graded = strip_citation_markers(text)
    cited = [c.hit.passage.doc_id for c in answer.citations] if answer is not None else []
    timings = {"search": search_seconds, "total": answer_seconds}
    if answer is not None:
        timings.update({stage: float(seconds) for stage, seconds in answer.timings.items()})

    record = {
        "id": question.id,
        "question": question.question,
        "lang": question.lang,
        "doc_lang": question.doc_lang or _doc_lang(gold_langs.values()),
        "group": question.group,
        "answerable": question.answerable,
        "expected": list(question.answers),
        "gold_docs": list(question.gold_docs),
        "ranked": ranked,
        "gold_rank": next((rank for rank, doc_id in enumerate(ranked, 1) if doc_id in question.gold_docs), None),
        "retrieval": retrieval_scores(ranked, question.gold_docs) if question.gold_docs else None,
        "answer": text,
        "mode": answer.mode if answer is not None else None,
        "refused": refused,
        "correct": None,
        "f1": None,
        "em": None,
        "citation_precision": None,
        "citation_coverage": None,
        "citations": [
            {"n": c.n, "doc_id": c.hit.passage.doc_id, "chunk_id": c.hit.passage.chunk_id}
            for c in (answer.citations if answer is not None else [])
        ],
        "timings": timings,
        "notes": list(answer.notes) if answer is not None else [],
        "model_reply": answer.model_reply if answer is not None else None,  # also when the answer fell back
        "error": error,
    }
    if question.answerable:
        answered = not refused and answer is not None
        record["correct"] = answered and answer_contains(graded, question.answers)
        if answered and answer.mode == MODE_LLM:
            record["language_match"] = _answer_language_matches(graded, question.lang)
            record["unsupported_citations"] = any(not c.supported for c in answer.citations)
        record["f1"] = squad_f1(graded, question.answers) if answered else 0.0
        record["em"] = squad_em(graded, question.answers) if answered else 0.0
        if answered:
            record["citation_precision"] = citation_precision(cited, question.gold_docs)
            record["citation_coverage"] = citation_coverage(text)
    else:
        record["correct"] = refused
    return record


def _answer_language_matches(answer_text: str, question_lang: str) -> bool | None:
    """Whether a generated answer is in the question's language; None for replies too short to tell
    (a bare name has no language)."""
    if len(answer_text.split()) < LANGUAGE_MIN_WORDS:
        return None
    return detect_language(answer_text) == question_lang


def _doc_lang(langs: Iterable[str | None]) -> str:
    found = sorted({lang or "und" for lang in langs})
    return "+".join(found) if found else NO_GOLD


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def _aggregate(records: list[dict]) -> dict:
    answerable = [r for r in records if r["answerable"]]
    unanswerable = [r for r in records if not r["answerable"]]
    with_gold = [r for r in records if r["retrieval"] is not None]
    stages = sorted({stage for r in records for stage in r["timings"]})
    return {
        "n": len(records),
        "n_answerable": len(answerable),
        "n_unanswerable": len(unanswerable),
        "retrieval": {key: _mean(r["retrieval"][key] for r in with_gold) for key in RETRIEVAL_KEYS},
        "answers": {
            "accuracy": _mean(float(r["correct"]) for r in answerable),
            "f1": _mean(r["f1"] for r in answerable),
            "em": _mean(r["em"] for r in answerable),
            "citation_precision": _mean(r["citation_precision"] for r in answerable),
            "citation_coverage": _mean(r["citation_coverage"] for r in answerable),
            # of generated answers only: extractive ones quote the articles in their own languages
            "language_match": _mean(_float(r.get("language_match")) for r in answerable),
            "unsupported_citations": _mean(_float(r.get("unsupported_citations")) for r in answerable),
        },
        "refusal": {
            "accuracy": _mean(float(r["refused"]) for r in unanswerable),
            "false_refusal_rate": _mean(float(r["refused"]) for r in answerable),
        },
        "latency": {stage: _latency([r["timings"][stage] for r in records if stage in r["timings"]])
                    for stage in stages},
    }


def _float(value: bool | None) -> float | None:
    return None if value is None else float(value)


def _latency(seconds: list[float]) -> dict[str, float | None]:
    return {"p50": percentile(seconds, 50), "p95": percentile(seconds, 95)}


def _grouped(records: list[dict], key: str) -> dict[str, dict]:
    groups: dict[str, list[dict]] = {}
    for record in records:
        groups.setdefault(record[key], []).append(record)
    return {name: _aggregate(groups[name]) for name in sorted(groups)}


def settings_dict(settings) -> dict:
    """Settings as a JSON-safe dict without secrets (API keys; passwords inside URLs)."""
    data = _json_safe(settings)
    if not isinstance(data, dict):
        return {}
    clean = {}
    for name, value in data.items():
        if _SECRET_FIELDS.search(name):
            continue
        if isinstance(value, str) and "://" in value and "@" in value.split("://", 1)[1].split("/", 1)[0]:
            scheme, rest = value.split("://", 1)
            value = f"{scheme}://{rest.split('@', 1)[1]}"
        clean[name] = value
    return clean


def _json_safe(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "model_dump"):
        return _json_safe(value.model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _json_safe(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_json_safe(v) for v in value]
    return str(value)


# --------------------------------------------------------------------- reports

REPORT_PREFIX = "eval-"


def write_reports(report: dict, out_dir: str | Path = Path("eval/reports")) -> tuple[Path, Path]:
    """Write ``eval-YYYYmmdd-HHMMSS.json`` and ``.md`` into ``out_dir`` (created); return both paths.

    A run that would overwrite an earlier one's files gets a ``-2``, ``-3``… suffix.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        moment = datetime.fromisoformat(report["timestamp"])
    except (KeyError, TypeError, ValueError):
        moment = datetime.now()
    stem = f"{REPORT_PREFIX}{moment:%Y%m%d-%H%M%S}"
    candidate, number = stem, 1
    while (out / f"{candidate}.json").exists() or (out / f"{candidate}.md").exists():
        number += 1
        candidate = f"{stem}-{number}"
    json_path, md_path = out / f"{candidate}.json", out / f"{candidate}.md"
    json_path.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    md_path.write_text(markdown_report(report), encoding="utf-8")
    return json_path, md_path


def _metric_rows(block: dict) -> list[tuple[str, object]]:
    """(label, value) of every metric in an aggregate block, in display order."""
    rows: list[tuple[str, object]] = [("questions", block.get("n"))]
    rows += [(f"retrieval {key}", block.get("retrieval", {}).get(key)) for key in RETRIEVAL_KEYS]
    rows += [(f"answer {key.replace('_', ' ')}", block.get("answers", {}).get(key)) for key in ANSWER_KEYS]
    rows += [("refusal accuracy", block.get("refusal", {}).get("accuracy")),
             ("false refusal rate", block.get("refusal", {}).get("false_refusal_rate"))]
    for stage, values in block.get("latency", {}).items():
        rows += [(f"latency {stage} p50 (s)", values.get("p50")), (f"latency {stage} p95 (s)", values.get("p95"))]
    return rows


def _fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _cell(text, limit: int = 80) -> str:
    text = " ".join(str(text).split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text.replace("|", "\\|")


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _breakdown_table(overall: dict, groups: dict[str, dict]) -> str:
    names = list(groups)
    labels: list[str] = []
    values: dict[str, dict[str, object]] = {}
    for name, block in [("all", overall), *groups.items()]:
        for label, value in _metric_rows(block):
            if label not in labels:
                labels.append(label)
            values.setdefault(label, {})[name] = value
    header = ["metric", "all", *names]
    return _table(header, [[label, *(_fmt(values[label].get(name)) for name in ["all", *names])] for label in labels])


def markdown_report(report: dict) -> str:
    """The readable scorecard: overall, per question language, per article language, failures."""
    manifest = report.get("manifest") or {}
    config = report.get("config") or {}
    lines = [f"# Evaluation {report.get('timestamp', '')}", ""]
    facts = [
        f"questions: `{report.get('questions_file') or '—'}`",
        f"{report.get('n')} questions ({report.get('n_answerable')} answerable, "
        f"{report.get('n_unanswerable')} unanswerable)",
        f"mode: {report.get('mode') or '—'}",
        f"retrieval depth: {report.get('k')} chunks",
    ]
    if config.get("llm_model") and report.get("mode") == "llm":
        facts.append(f"LLM: {config['llm_model']}")
    if manifest:
        facts.append(f"index: {manifest.get('model')} · {manifest.get('articles')} articles · "
                     f"{manifest.get('chunks')} chunks")
    lines += [" · ".join(facts), ""]
    if report.get("errors"):
        lines += [f"**{report['errors']} question(s) failed with an error** (see `error` in the JSON report).", ""]
    if report.get("missing_gold_docs"):
        missing = report["missing_gold_docs"]
        lines += [f"**{len(missing)} gold article(s) are not in the index**: "
                  + ", ".join(f"`{d}`" for d in missing[:10]) + (" …" if len(missing) > 10 else ""), ""]

    overall = _table(["metric", "value"], [[label, _fmt(value)] for label, value in _metric_rows(report)])
    lines += ["## Overall", "", overall, ""]
    lines += ["## By question language", "", _breakdown_table(report, report.get("by_question_lang", {})), ""]
    lines += ["## By article language", "", _breakdown_table(report, report.get("by_doc_lang", {})), ""]
    by_group = report.get("by_group", {})
    if set(by_group) - set(report.get("by_question_lang", {})):
        lines += ["## By question → article language", "", _breakdown_table(report, by_group), ""]

    failed = [q for q in report.get("questions", []) if not q.get("correct")]
    lines += [f"## Failed questions ({len(failed)})", ""]
    if failed:
        rows = []
        for q in failed:
            expected = " / ".join(q["expected"]) if q["answerable"] else "(refusal)"
            got = q.get("error") or (("(refused) " if q["refused"] else "") + (q["answer"] or ""))
            rank = _fmt(q.get("gold_rank")) if q["answerable"] else ""
            rows.append([q["id"], q["group"], _cell(q["question"]), _cell(expected, 50), _cell(got, 100), rank])
        lines.append(_table(["id", "lang", "question", "expected", "got", "gold rank"], rows))
    else:
        lines.append("None.")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------- comparing and gating

_BLOCKS = ("retrieval", "answers", "refusal", "latency")
_NEUTRAL = {"n", "n_answerable", "n_unanswerable"}


def _numeric_leaves(value, prefix: str = "") -> dict[str, float | None]:
    if isinstance(value, dict):
        out: dict[str, float | None] = {}
        for key, sub in value.items():
            out.update(_numeric_leaves(sub, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return {prefix: value}
    return {}


def _comparable(block: dict) -> dict[str, float | None]:
    metrics = {key: block.get(key) for key in ("n", "n_answerable", "n_unanswerable") if key in block}
    for name in _BLOCKS:
        metrics.update(_numeric_leaves(block.get(name, {}), name))
    return metrics


def lower_is_better(metric: str) -> bool:
    return metric.startswith("latency.") or metric.endswith(("false_refusal_rate", "unsupported_citations"))


def compare(a_json_path: str | Path, b_json_path: str | Path) -> str:
    """A Markdown table of every numeric metric of two reports (overall and per question language).

    Δ is B − A; the last column says whether B is better or worse (lower is
    better for the false-refusal rate and latencies; counts are not judged).
    """
    a = json.loads(Path(a_json_path).read_text(encoding="utf-8"))
    b = json.loads(Path(b_json_path).read_text(encoding="utf-8"))
    scopes = [("all", a, b)]
    langs = sorted(set(a.get("by_question_lang", {})) | set(b.get("by_question_lang", {})))
    scopes += [(lang, a.get("by_question_lang", {}).get(lang, {}), b.get("by_question_lang", {}).get(lang, {}))
               for lang in langs]
    rows, better, worse = [], 0, 0
    for scope, block_a, block_b in scopes:
        metrics_a, metrics_b = _comparable(block_a), _comparable(block_b)
        for metric in [*metrics_a, *(m for m in metrics_b if m not in metrics_a)]:
            va, vb = metrics_a.get(metric), metrics_b.get(metric)
            delta, verdict = "", ""
            if va is not None and vb is not None:
                diff = vb - va
                delta = f"{diff:+d}" if isinstance(diff, int) else f"{diff:+.3f}"
                if metric not in _NEUTRAL and abs(diff) > 1e-9:
                    improved = diff < 0 if lower_is_better(metric) else diff > 0
                    verdict = "▲ better" if improved else "▼ worse"
                    better, worse = better + improved, worse + (not improved)
            rows.append([scope, metric, _fmt(va), _fmt(vb), delta, verdict])
    head = [
        f"A: {a_json_path} ({a.get('timestamp', '?')}, {a.get('mode') or '?'}, {a.get('n', '?')} questions)",
        f"B: {b_json_path} ({b.get('timestamp', '?')}, {b.get('mode') or '?'}, {b.get('n', '?')} questions)",
        "",
        _table(["scope", "metric", "A", "B", "Δ (B−A)", ""], rows),
        "",
        f"{better} better, {worse} worse",
    ]
    return "\n".join(head) + "\n"


def metric_value(report: dict, path: str):
    """The value at a dotted ``path`` (``by_question_lang.en.retrieval.recall@5``); ``KeyError`` if absent.

    Keys containing dots are found too: the longest key matching the path's start wins.
    """
    node, rest = report, path
    while rest:
        if not isinstance(node, dict):
            raise KeyError(path)
        parts = rest.split(".")
        for size in range(len(parts), 0, -1):
            key = ".".join(parts[:size])
            if key in node:
                node, rest = node[key], ".".join(parts[size:])
                break
        else:
            raise KeyError(path)
    return node


def load_thresholds(path: str | Path) -> dict[str, float]:
    """Read ``{"retrieval.recall@5": 0.9, ...}`` (dotted report path → minimum value)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read thresholds ({exc})") from exc
    if not isinstance(data, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in data.values()
    ):
        raise ValueError(f'{path}: expected a JSON object of numbers, like {{"retrieval.recall@5": 0.9}}')
    return {str(k): float(v) for k, v in data.items()}


def check_thresholds(report: dict, thresholds: dict[str, float]) -> list[str]:
    """One message per threshold not met (every threshold is a minimum); empty when all pass.

    A metric missing from the report, or not measured (``null``), fails too.
    """
    failures = []
    for path, minimum in thresholds.items():
        try:
            value = metric_value(report, path)
        except KeyError:
            failures.append(f"{path}: not in the report (threshold {minimum:g})")
            continue
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            failures.append(f"{path}: not measured in this run (threshold {minimum:g})")
        elif value < minimum:
            failures.append(f"{path} = {value:.3f} is below the threshold {minimum:g}")
    return failures
