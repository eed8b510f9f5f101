"""Evaluation: the metrics on hand-computed cases, the aggregation, the reports, compare and CI thresholds.

No embedding model is needed: ``evaluate`` is driven by :class:`HandMadeAssistant`,
which returns hand-written hits and answers so the aggregated numbers can be
worked out on paper (the arithmetic is in the comments).
"""

from __future__ import annotations

import json
from collections import Counter
import math
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from rag.answers import MODE_EXTRACTIVE, MODE_LLM, Answer, Citation
from rag.config import load_settings
from rag.evaluation import (
    EvalQuestion,
    answer_contains,
    check_thresholds,
    citation_coverage,
    citation_precision,
    compare,
    evaluate,
    load_questions,
    load_thresholds,
    metric_value,
    ndcg_at,
    percentile,
    ranked_articles,
    recall_at,
    reciprocal_rank,
    retrieval_scores,
    split_sentences,
    stratified_sample,
    squad_em,
    squad_f1,
    squad_normalize,
    strip_citation_markers,
    write_reports,
)
from rag.retrieval import Hit
from rag.store import Manifest, Passage

ROOT = Path(__file__).resolve().parents[1]
PROJECT_QUESTIONS = ROOT / "eval" / "questions.jsonl"
EXTERNAL_QUESTIONS = ROOT.parent / "shared" / "bench" / "xquad-facqa" / "questions.jsonl"


# --------------------------------------------------------------------- retrieval metrics


def test_recall_mrr_ndcg_with_two_gold_articles_one_found_at_rank_three():
    ranked = ["x", "y", "gold1", "z"]
    gold = ("gold1", "gold2")
    assert recall_at(ranked, gold, 1) == 0.0
    assert recall_at(ranked, gold, 5) == 0.5  # one of the two gold articles in the top 5
    assert reciprocal_rank(ranked, gold, 10) == pytest.approx(1 / 3)
    # DCG = 1/log2(3+1) = 0.5; ideal DCG (two relevant) = 1/log2(2) + 1/log2(3) = 1 + 0.6309 = 1.6309
    assert ndcg_at(ranked, gold, 10) == pytest.approx(0.5 / (1 + 1 / math.log2(3)))
    scores = retrieval_scores(ranked, gold)
    assert set(scores) == {"recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10"}
    assert scores["recall@10"] == 0.5


def test_ranked_articles_keeps_each_article_at_its_best_chunk():
    hits = [_hit(1, "b"), _hit(2, "a"), _hit(3, "b"), _hit(4, "c")]
    assert ranked_articles(hits) == ["b", "a", "c"]


# --------------------------------------------------------------------- answer metrics


def test_answer_contains_ignores_accents_and_case():
    assert answer_contains("Chủ tịch là cao van cuong.", ["Cao Văn Cương"])
    assert answer_contains("CAO   VĂN\nCƯƠNG", ["cao văn cương"])  # runs of whitespace count as one space
    assert answer_contains("Đà Nẵng", ["Da Nang"])  # đ folds to d
    assert not answer_contains("cao van", ["Cao Văn Cương"])


def test_answer_contains_does_not_match_inside_a_word_or_number():
    assert not answer_contains("since 2014", ["14"])
    assert answer_contains("14 businesses took part", ["fourteen", "14"])  # any accepted answer will do
    assert not answer_contains("anything", [])
    assert not answer_contains("anything", [""])


def test_squad_normalisation_follows_squad_v1_1():
    # lower case, punctuation out, articles a/an/the out, whitespace collapsed
    assert squad_normalize("The  Mayor, Shin-Sang Jin!") == "mayor shinsang jin"
    assert squad_normalize("“Hà Nội” – an ancient city") == "hà nội ancient city"  # unicode punctuation too
    assert squad_normalize("theatre") == "theatre"  # only whole-word articles


def test_squad_f1_and_em():
    # prediction 4 tokens, truth 3, all 3 shared: precision 3/4, recall 1 → F1 = 2·(3/4·1)/(3/4+1) = 6/7 = 0.857…
    assert squad_f1("Mayor Shin Sang Jin", ["Shin Sang Jin"]) == pytest.approx(6 / 7)
    assert squad_f1("Shin Sang Jin", ["Mayor Shin Sang Jin"]) == pytest.approx(6 / 7)
    # the best over the accepted answers; "the" is an article and drops out
    assert squad_f1("the 2013 agreement", ["nothing", "2013 agreement"]) == 1.0
    assert squad_f1("abc", ["xyz"]) == 0.0
    assert squad_f1("abc", []) == 0.0
    assert squad_em("The Shin Sang Jin.", ["Shin Sang Jin"]) == 1.0
    assert squad_em("Mayor Shin Sang Jin", ["Shin Sang Jin"]) == 0.0
    assert squad_em("14", ["fourteen", "14"]) == 1.0


def test_citation_markers_are_stripped_before_grading():
    assert strip_citation_markers("Shin Sang Jin [1]. In 2013 [2][3], [1, 2] done.") == (
        "Shin Sang Jin. In 2013, done."
    )


def test_citation_precision():
    # three cited passages, two from the gold article → 2/3
    assert citation_precision(["a", "b", "a"], ("a",)) == pytest.approx(2 / 3)
    assert citation_precision(["a"], ("a", "c")) == 1.0
    assert citation_precision([], ("a",)) is None  # nothing cited: undefined, left out of the mean


def test_citation_coverage_of_a_three_sentence_answer_with_two_cited():
    text = "Shin Sang Jin is the mayor [1]. He came in 2013. The group had 14 firms [2][3]."
    assert split_sentences(text) == [
        "Shin Sang Jin is the mayor [1].",
        "He came in 2013.",
        "The group had 14 firms [2][3].",
    ]
    assert citation_coverage(text) == pytest.approx(2 / 3)


def test_citation_coverage_marker_forms_and_placement():
    assert citation_coverage("Both say so [1, 2]. Yes [3]!") == 1.0
    # a marker after the full stop belongs to the sentence before it, not to the next one
    assert split_sentences("First. [1] Second one.") == ["First. [1]", "Second one."]
    assert citation_coverage("First. [1] Second one.") == 0.5
    # bullet lines are sentences; a marker alone on a line joins the line before
    assert citation_coverage("- point one [1]\n- point two\n[2]") == 1.0
    assert citation_coverage("3.5 million dollars [1].") == 1.0  # a decimal point ends no sentence
    assert citation_coverage("") == 0.0
    assert citation_coverage("No citations here. None at all.") == 0.0


def test_percentile_interpolates_linearly():
    values = [4, 1, 3, 2]
    assert percentile(values, 50) == 2.5  # halfway between 2 and 3
    assert percentile(values, 95) == pytest.approx(3.85)  # position 0.95·3 = 2.85 → 3 + 0.85·(4−3)
    assert percentile(values, 0) == 1
    assert percentile(values, 100) == 4
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile(values, 101)


# --------------------------------------------------------------------- evaluate, end to end


def _passage(doc_id: str, position: int = 0, lang: str = "id", text: str = "text") -> Passage:
    return Passage(0, doc_id, position, f"Title of {doc_id}", None, lang, None, text, 0, len(text))


def _hit(rank: int, doc_id: str, position: int = 0) -> Hit:
    return Hit(rank, 0.5, _passage(doc_id, position))


def _hits(*doc_ids: str) -> list[Hit]:
    return [_hit(rank, doc_id, rank) for rank, doc_id in enumerate(doc_ids, start=1)]


ARTICLE_LANGS = {"docA": "id", "docB": "id", "docC": "vi", "docD": "vi", "docE": "ms"}


class HandMadeStore:
    """Test data: article languages and a manifest, as the index would give them."""

    manifest = Manifest("test-model", "fp", 4, 220, 40, "o200k_base", "1", built_at=0.0, articles=5, chunks=9)

    def article(self, doc_id):
        lang = ARTICLE_LANGS.get(doc_id)
        return SimpleNamespace(doc_id=doc_id, lang=lang) if lang else None


class HandMadeAssistant:
    """Test data for the aggregation: hand-written search results and answers per question.

    ``script`` maps a question to ``(hits, answer)``; nothing is embedded or generated.
    """

    def __init__(self, script: dict[str, tuple[list[Hit], Answer | Exception]], settings=None):
        self.script = script
        self.settings = settings
        self.store = HandMadeStore()
        self.calls: list[tuple[str, object]] = []

    def search(self, question, k=None):
        self.calls.append(("search", k))
        return self.script[question][0][:k]

    def answer(self, question, history=(), use_llm=None):
        self.calls.append(("answer", use_llm))
        answer = self.script[question][1]
        if isinstance(answer, Exception):
            raise answer
        return answer


def _answer(question, text, cited=(), refused=False, timings=None) -> Answer:
    citations = [Citation(n, _hit(n, doc_id), "quote") for n, doc_id in enumerate(cited, start=1)]
    return Answer(question, text, citations, [c.hit for c in citations], MODE_EXTRACTIVE, refused=refused,
                  timings=timings or {})


QUESTIONS = [
    EvalQuestion("q1", "Who is the mayor?", "en", True, ("docA",), ("Shin Sang Jin",)),
    EvalQuestion("q2", "Ai là chủ tịch?", "vi", True, ("docC", "docD"), ("Cao Văn Cương",)),
    EvalQuestion("q3", "Từ năm nào?", "vi", True, ("docE",), ("2013",)),
    EvalQuestion("q4", "What is the population?", "en", False, (), ()),
    EvalQuestion("q5", "Berapa penduduknya?", "id", False, (), ()),
]


def _script():
    refusal = "The articles do not say."
    return {
        # q1: gold first; answer right, 2 sentences of which 1 cited, the citation from the gold article
        "Who is the mayor?": (
            _hits("docA", "docB"),
            _answer("q1", "The mayor is Shin Sang Jin [1]. He visited Thanh Hoa.", ["docA"],
                    timings={"retrieve": 0.1, "generate": 1.0}),
        ),
        # q2: gold docC at article rank 3 (docB's two chunks count once), docD never; answer right
        # but unaccented; one sentence, cited; citations docC (gold) and docB (not) → precision 1/2
        "Ai là chủ tịch?": (
            _hits("docB", "docB", "docE", "docC"),
            _answer("q2", "cao van cuong [1][2].", ["docC", "docB"], timings={"retrieve": 0.3, "generate": 3.0}),
        ),
        # q3: gold first but the answer is refused: a false refusal
        "Từ năm nào?": (_hits("docE"), _answer("q3", refusal, refused=True, timings={"retrieve": 0.2})),
        # q4: unanswerable, refused: right
        "What is the population?": (_hits("docA"), _answer("q4", refusal, refused=True, timings={"retrieve": 0.1})),
        # q5: unanswerable, answered anyway: wrong
        "Berapa penduduknya?": (_hits("docB"), _answer("q5", "About 900 000 [1].", ["docB"],
                                                       timings={"retrieve": 0.1})),
    }


@pytest.fixture()
def report(tmp_path):
    settings = load_settings(corpus=tmp_path / "corpus", index=tmp_path / "index", llm_api_key="sk-not-for-reports",
                             llm_base_url="https://user:pw@llm.example/v1")
    assistant = HandMadeAssistant(_script(), settings)
    result = evaluate(assistant, QUESTIONS, use_llm=False, progress=False, questions_file="eval/q.jsonl")
    assert assistant.calls[:2] == [("search", 10), ("answer", False)]
    return result


def test_evaluate_retrieval_is_averaged_over_questions_with_gold_articles(report):
    r = report["retrieval"]
    # per question (q1, q2, q3): recall@1 1, 0, 1; recall@5 1, 1/2, 1; MRR 1, 1/3, 1
    assert r["recall@1"] == pytest.approx(2 / 3)
    assert r["recall@5"] == pytest.approx(2.5 / 3)
    assert r["recall@10"] == pytest.approx(2.5 / 3)
    assert r["mrr@10"] == pytest.approx(7 / 9)
    # nDCG of q2: (1/log2 4) / (1/log2 2 + 1/log2 3)
    ndcg_q2 = 0.5 / (1 + 1 / math.log2(3))
    assert r["ndcg@10"] == pytest.approx((1 + ndcg_q2 + 1) / 3)


def test_evaluate_answer_and_refusal_metrics(report):
    assert (report["n"], report["n_answerable"], report["n_unanswerable"]) == (5, 3, 2)
    a = report["answers"]
    # q1 and q2 right (q2 only accent-insensitively), q3 refused → 2/3
    assert a["accuracy"] == pytest.approx(2 / 3)
    # q1: "mayor is shin sang jin he visited thanh hoa" (9 tokens, "the" dropped, [1] stripped) vs 3 tokens,
    #     all shared → P 1/3, R 1 → F1 1/2
    # q2: SQuAD does not fold accents: "cao van cuong" vs "cao văn cương" share "cao" → P = R = 1/3 → F1 1/3
    # q3: refused → 0
    assert a["f1"] == pytest.approx((1 / 2 + 1 / 3 + 0) / 3)
    assert a["em"] == 0.0
    assert a["citation_precision"] == pytest.approx((1 + 0.5) / 2)  # q1, q2 (q3 refused, not counted)
    assert a["citation_coverage"] == pytest.approx((0.5 + 1) / 2)
    assert report["refusal"]["accuracy"] == 0.5  # q4 refused, q5 not
    assert report["refusal"]["false_refusal_rate"] == pytest.approx(1 / 3)  # q3 of q1–q3


def test_evaluate_latency_per_stage(report):
    lat = report["latency"]
    # retrieve: 0.1, 0.1, 0.1, 0.2, 0.3 → p50 0.1; p95 at position 3.8 → 0.2 + 0.8·0.1 = 0.28
    assert lat["retrieve"]["p50"] == pytest.approx(0.1)
    assert lat["retrieve"]["p95"] == pytest.approx(0.28)
    # generate: 1.0, 3.0 → p50 2.0, p95 1 + 0.95·2 = 2.9
    assert lat["generate"] == pytest.approx({"p50": 2.0, "p95": 2.9})
    # measured by the evaluation itself: its own search and the whole answer call
    assert set(lat) == {"retrieve", "generate", "search", "total"}


def test_evaluate_breaks_down_by_question_language(report):
    by_lang = report["by_question_lang"]
    assert set(by_lang) == {"en", "vi", "id"}
    en, vi, id_ = by_lang["en"], by_lang["vi"], by_lang["id"]
    assert (en["n"], vi["n"], id_["n"]) == (2, 2, 1)
    assert en["retrieval"]["recall@5"] == 1.0  # q1
    assert vi["retrieval"]["recall@5"] == pytest.approx(0.75)  # q2 1/2, q3 1
    assert id_["retrieval"]["recall@5"] is None  # no answerable question in Indonesian
    assert en["answers"]["accuracy"] == 1.0 and vi["answers"]["accuracy"] == 0.5
    assert en["refusal"] == {"accuracy": 1.0, "false_refusal_rate": 0.0}
    assert vi["refusal"] == {"accuracy": None, "false_refusal_rate": 0.5}
    assert id_["refusal"]["accuracy"] == 0.0
    assert set(en["latency"]) >= {"retrieve", "generate"}
    assert metric_value(report, "by_question_lang.vi.retrieval.recall@5") == pytest.approx(0.75)


def test_evaluate_breaks_down_by_article_language_from_the_index(report):
    # gold languages looked up in the index: docA id, docC/docD vi, docE ms; no gold → "none"
    by_doc = report["by_doc_lang"]
    assert set(by_doc) == {"id", "vi", "ms", "none"}
    assert by_doc["vi"]["retrieval"]["recall@5"] == 0.5
    assert by_doc["ms"]["refusal"]["false_refusal_rate"] == 1.0
    assert by_doc["none"]["refusal"]["accuracy"] == 0.5
    assert report["missing_gold_docs"] == []


def test_evaluate_uses_the_sets_article_language_when_given():
    question = EvalQuestion("x1", "Who?", "en", True, ("nowhere",), ("Kurt Coleman",), doc_lang="vi")
    script = {"Who?": (_hits("nowhere"), _answer("x1", "Kurt Coleman [1].", ["nowhere"]))}
    report = evaluate(HandMadeAssistant(script), [question], progress=False)
    assert set(report["by_doc_lang"]) == {"vi"}
    assert set(report["by_group"]) == {"en→vi"}
    assert report["missing_gold_docs"] == ["nowhere"]  # not in the index: said so in the report
    assert report["answers"]["em"] == 1.0


def test_evaluate_keeps_per_question_records(report):
    records = {q["id"]: q for q in report["questions"]}
    assert [q["id"] for q in report["questions"]] == ["q1", "q2", "q3", "q4", "q5"]
    q2 = records["q2"]
    assert q2["ranked"] == ["docB", "docE", "docC"]
    assert q2["gold_rank"] == 3
    assert q2["correct"] is True and q2["f1"] == pytest.approx(1 / 3)
    assert [c["doc_id"] for c in q2["citations"]] == ["docC", "docB"]
    assert q2["group"] == "vi" and q2["answerable"] is True
    assert records["q3"]["refused"] is True and records["q3"]["correct"] is False
    assert records["q4"]["correct"] is True  # unanswerable and refused
    assert records["q5"]["correct"] is False


def test_evaluate_report_metadata_is_json_safe_and_has_no_secret(report):
    assert report["mode"] == "extractive"
    assert report["questions_file"] == "eval/q.jsonl"
    assert report["manifest"]["model"] == "test-model"
    assert "llm_api_key" not in report["config"]
    assert report["config"]["llm_base_url"] == "https://llm.example/v1"  # credentials in the URL dropped
    assert report["config"]["top_k"] == 5
    text = json.dumps(report)
    assert "sk-not-for-reports" not in text and "user:pw" not in text
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", report["timestamp"])


def test_evaluate_records_an_answer_error_and_goes_on():
    questions = QUESTIONS[:2]
    script = _script()
    script["Who is the mayor?"] = (script["Who is the mayor?"][0], RuntimeError("endpoint exploded"))
    report = evaluate(HandMadeAssistant(script), questions, progress=False)
    assert report["errors"] == 1
    failed = report["questions"][0]
    assert failed["error"] == "RuntimeError: endpoint exploded" and failed["correct"] is False
    assert report["answers"]["accuracy"] == 0.5
    assert report["retrieval"]["recall@1"] == 0.5  # retrieval still scored


def test_evaluate_refuses_an_empty_question_list():
    with pytest.raises(ValueError):
        evaluate(HandMadeAssistant({}), [], progress=False)


# --------------------------------------------------------------------- reports


def test_write_reports_writes_timestamped_json_and_markdown(report, tmp_path):
    json_path, md_path = write_reports(report, tmp_path / "reports")
    assert re.fullmatch(r"eval-\d{8}-\d{6}\.json", json_path.name)
    assert md_path.name == json_path.name.replace(".json", ".md")
    assert json.loads(json_path.read_text(encoding="utf-8"))["retrieval"] == report["retrieval"]

    md = md_path.read_text(encoding="utf-8")
    assert "## Overall" in md and "| retrieval recall@5 | 0.833 |" in md
    assert "## By question language" in md and "| metric | all | en | id | vi |" in md
    assert "## By article language" in md and "| metric | all | id | ms | none | vi |" in md
    failures = md.split("## Failed questions", 1)[1]
    assert "(2)" in failures.splitlines()[0]  # q3 (false refusal) and q5 (answered though unanswerable)
    assert "| q3 |" in failures and "(refused)" in failures
    assert "| q5 |" in failures and "About 900 000" in failures
    assert "| q1 |" not in failures

    again = write_reports(report, tmp_path / "reports")  # same second: a new name, nothing overwritten
    assert again[0] != json_path and again[0].exists()


def test_write_reports_shortens_long_answers_in_the_failures(report, tmp_path):
    report["questions"][4]["answer"] = "word | " * 100
    md = write_reports(report, tmp_path)[1].read_text(encoding="utf-8")
    line = next(line for line in md.splitlines() if line.startswith("| q5 |"))
    assert "…" in line and len(line) < 400
    assert len(re.findall(r"(?<!\\)\|", line)) == 7  # six cells: the pipes inside the answer are escaped


def _write(tmp_path, name, report):
    path = tmp_path / name
    path.write_text(json.dumps(report), encoding="utf-8")
    return path


def test_compare_marks_regressions_and_improvements(report, tmp_path):
    a = json.loads(json.dumps(report))
    b = json.loads(json.dumps(report))
    b["retrieval"]["recall@5"] = 0.5  # dropped from 0.833
    b["refusal"]["false_refusal_rate"] = 0.0  # lower is better
    b["latency"]["generate"]["p95"] = 5.0  # slower
    b["by_question_lang"]["en"]["answers"]["accuracy"] = 0.0
    table = compare(_write(tmp_path, "a.json", a), _write(tmp_path, "b.json", b))

    def row(scope, metric):
        return next(line for line in table.splitlines() if line.startswith(f"| {scope} | {metric} |"))

    assert row("all", "retrieval.recall@5") == "| all | retrieval.recall@5 | 0.833 | 0.500 | -0.333 | ▼ worse |"
    assert row("all", "refusal.false_refusal_rate").endswith("▲ better |")
    assert row("all", "latency.generate.p95").endswith("▼ worse |")
    assert row("en", "answers.accuracy").endswith("▼ worse |")
    assert row("all", "answers.f1").endswith("| +0.000 |  |")  # unchanged: not judged
    assert row("vi", "retrieval.recall@5")  # every question language is compared
    assert table.rstrip().endswith("1 better, 3 worse")


def test_check_thresholds(report):
    assert check_thresholds(report, {"retrieval.recall@5": 0.8, "refusal.accuracy": 0.5}) == []
    failures = check_thresholds(report, {
        "retrieval.recall@5": 0.9,  # 0.833: fails
        "answers.accuracy": 0.5,  # 0.667: passes
        "by_question_lang.vi.retrieval.recall@5": 0.8,  # 0.75: fails
        "by_question_lang.vi.refusal.accuracy": 0.5,  # no unanswerable Vietnamese question: not measured
        "retrieval.recall@50": 0.1,  # no such metric
    })
    assert len(failures) == 4
    assert failures[0] == "retrieval.recall@5 = 0.833 is below the threshold 0.9"
    assert "by_question_lang.vi.retrieval.recall@5 = 0.750" in failures[1]
    assert "not measured" in failures[2]
    assert "not in the report" in failures[3]


def test_load_thresholds(tmp_path):
    path = tmp_path / "thresholds.json"
    path.write_text('{"retrieval.recall@5": 0.9, "refusal.accuracy": 1}', encoding="utf-8")
    assert load_thresholds(path) == {"retrieval.recall@5": 0.9, "refusal.accuracy": 1.0}
    path.write_text('{"retrieval.recall@5": "high"}', encoding="utf-8")
    with pytest.raises(ValueError, match="JSON object of numbers"):
        load_thresholds(path)
    with pytest.raises(ValueError, match="cannot read"):
        load_thresholds(tmp_path / "missing.json")


# --------------------------------------------------------------------- question files


def test_load_project_questions():
    questions = load_questions(PROJECT_QUESTIONS)
    assert len(questions) == 86
    assert {q.lang for q in questions} == {"en", "vi", "id"}
    assert sum(not q.answerable for q in questions) == 15
    assert all(q.gold_docs and q.answers for q in questions if q.answerable)
    assert all(not q.gold_docs for q in questions if not q.answerable)
    assert all(q.group == q.lang and q.doc_lang is None for q in questions)


@pytest.mark.skipif(not EXTERNAL_QUESTIONS.exists(), reason="external benchmark not present")
def test_load_external_benchmark_questions():
    questions = load_questions(EXTERNAL_QUESTIONS)
    assert len(questions) == 909
    assert all(q.answerable and q.gold_docs and q.answers for q in questions)
    groups = {q.group for q in questions}
    assert groups == {"vi→vi", "en→vi", "id→id"}
    cross = next(q for q in questions if q.group == "en→vi")
    assert cross.lang == "en" and cross.doc_lang == "vi"
    assert cross.gold_docs[0].startswith("xquad-vi-")


def test_load_questions_names_the_bad_line(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"id": 1, "question": "ok?", "lang": "en"}\n\n{"id": 2}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"q.jsonl:3"):
        load_questions(path)


def test_stratified_sample_keeps_every_unanswerable_question_and_spreads_the_rest_over_languages():
    questions = [EvalQuestion(f"a{i}", "?", lang, True, ("docA",), ("x",))
                 for i, lang in enumerate(["en"] * 10 + ["vi"] * 10 + ["id"] * 5)]
    questions += [EvalQuestion(f"u{i}", "?", "vi", False, (), ()) for i in range(3)]
    sample = stratified_sample(questions, 13)
    assert {q.id for q in sample if not q.answerable} == {"u0", "u1", "u2"}
    langs = Counter(q.lang for q in sample if q.answerable)
    assert langs == {"en": 4, "vi": 4, "id": 2}
    assert [q.id for q in sample if q.lang == "en"] == ["a0", "a2", "a5", "a7"]  # spread, not the first four
    assert stratified_sample(questions, 13) == sample
    assert stratified_sample(questions, 2) == [q for q in questions if not q.answerable]


def test_generated_answers_are_scored_for_language_and_unsupported_citations(tmp_path):
    def generated(question_id, text, supported):
        hit = _hit(1, "docA")
        return Answer(question_id, text, [Citation(1, hit, "quote", supported=supported)], [hit], MODE_LLM)

    questions = [EvalQuestion("g1", "Who is the mayor?", "en", True, ("docA",), ("Shin Sang Jin",)),
                 EvalQuestion("g2", "Siapa wali kotanya?", "id", True, ("docA",), ("Shin Sang Jin",)),
                 EvalQuestion("g3", "Siapa gubernurnya?", "id", True, ("docA",), ("Nagasaki",))]
    script = {
        "Who is the mayor?": (_hits("docA"), generated("g1", "The mayor of Seongnam is Shin Sang Jin [1].", True)),
        "Siapa wali kotanya?": (_hits("docA"), generated("g2", "The mayor of Seongnam is Shin Sang Jin [1].", False)),
        "Siapa gubernurnya?": (_hits("docA"), generated("g3", "Nagasaki [1].", True)),  # too short to tell
    }
    settings = load_settings(corpus=tmp_path / "corpus", index=tmp_path / "index")
    report = evaluate(HandMadeAssistant(script, settings), questions, progress=False)
    assert report["answers"]["language_match"] == 0.5
    assert report["answers"]["unsupported_citations"] == pytest.approx(1 / 3)
    assert [r["language_match"] for r in report["questions"]] == [True, False, None]


def test_the_model_reply_is_kept_when_the_answer_fell_back(tmp_path):
    """A fallback's record says what the model wrote, so that a scorecard can be read without re-running it."""
    hit = _hit(1, "docA")
    fallback = Answer("f1", "Shin Sang Jin adalah Wali Kota Seongnam.", [Citation(1, hit, "quote")], [hit],
                      MODE_EXTRACTIVE, notes=("The language model's answer was not used (...)",),
                      model_reply="[1] [2] [3]")
    questions = [EvalQuestion("f1", "Who is the mayor?", "en", True, ("docA",), ("Shin Sang Jin",))]
    settings = load_settings(corpus=tmp_path / "corpus", index=tmp_path / "index")
    report = evaluate(HandMadeAssistant({"Who is the mayor?": (_hits("docA"), fallback)}, settings), questions,
                      progress=False)
    assert report["questions"][0]["model_reply"] == "[1] [2] [3]" and report["questions"][0]["mode"] == MODE_EXTRACTIVE
