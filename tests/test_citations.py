"""Citation markers and the claim check: the shapes small models write, and a labelled set of claims.

tests/data/claims.jsonl holds claims written for this test against passages
of the seed articles (Indonesian, Malay, Vietnamese), in English, Vietnamese
and Indonesian: correct translations and paraphrases, which must be backed,
and claims naming the wrong place or organisation, giving the wrong number,
or saying something the passage does not, which must be flagged.  Each row
names its article and a phrase of the passage it is checked against.
"""

import json
from pathlib import Path

import pytest

from rag.chunking import split_sentences
from rag.citations import MARKER, check_answer, is_lead_in, marker_numbers, parse, supports
from rag.retrieval import Hit
from rag.store import SentenceVectors

CLAIMS = Path(__file__).parent / "data" / "claims.jsonl"
YAMANASHI_AGREED = "Wakil wilayah Yamanashi bersetuju dengan kandungan cadangan"
SEONGNAM_MAYOR = "Di pihak Kota Seongnam, ada Bapak Shin Sang Jin"
SEONGNAM_DOC, DAEJEON_DOC = "000_4c94815e66c1bf8a", "003_6c45966e1ec7bc90"


def cites(answer: str) -> list[tuple[str, tuple[int, ...]]]:
    return [(s.text, s.cites) for s in parse(answer).sentences]


@pytest.mark.parametrize(
    ("marker", "numbers"),
    [("[1]", [1]), ("[1, 2]", [1, 2]), ("[1;3]", [1, 3]), ("[1-3]", [1, 2, 3]), ("【2】", [2]), ("[^1]", [1]),
     ("[ 4 ]", [4]), ("[Source 2]", [2]), ("[nguồn 3]", [3]), ("[1][2]", [1, 2])],
)
def test_marker_shapes(marker, numbers):
    assert marker_numbers(marker) == numbers
    assert cites(f"Yamanashi agreed {marker}.") == [("Yamanashi agreed.", tuple(numbers))]


def test_markers_after_their_sentence():
    assert cites("Yamanashi agreed [1]. Thanh Hoa invited them [2][3].") == [
        ("Yamanashi agreed.", (1,)), ("Thanh Hoa invited them.", (2, 3))]
    assert cites("Yamanashi agreed. [1] Thanh Hoa invited them. [2]") == [
        ("Yamanashi agreed.", (1,)), ("Thanh Hoa invited them.", (2,))]


def test_markers_before_their_sentence_belong_to_it():
    # what Qwen2.5-Coder-1.5B wrote: every marker opens the sentence it cites
    assert cites("[1] 20 orang hadir dalam pertemuan itu. [2] Acara itu diadakan di Hanoi.") == [
        ("20 orang hadir dalam pertemuan itu.", (1,)), ("Acara itu diadakan di Hanoi.", (2,))]
    assert cites("Yamanashi agreed [1].\n[2]\nThanh Hoa invited them.") == [
        ("Yamanashi agreed.", (1,)), ("Thanh Hoa invited them.", (2,))]


def test_list_items_are_sentences_of_their_own():
    parsed = parse("Berikut jawabannya:\n- Yamanashi setuju [1]\n- Thanh Hoa mengundang [2]")
    assert [(s.text, s.cites, s.separator) for s in parsed.sentences] == [
        ("Berikut jawabannya:", (), ""), ("Yamanashi setuju", (1,), "\n- "), ("Thanh Hoa mengundang", (2,), "\n- ")]


def test_placeholders_are_not_citations():
    parsed = parse("Yamanashi agreed [n]. Thanh Hoa invited them [1].")
    assert parsed.placeholders == ("[n]",)
    assert [s.cites for s in parsed.sentences] == [(), (1,)]


def test_an_answer_of_markers_only_has_no_sentences():
    assert parse("[1] [2] [3] [4] [5]").sentences == ()


def test_the_shared_pattern_reads_every_shape():
    assert [marker_numbers(m.group(0)) for m in MARKER.finditer("a [1] b 【2】 c [^3] d [4-5]")] == [[1], [2], [3], [4, 5]]


@pytest.mark.parametrize(("sentence", "lead_in"), [
    ("Berikut jawabannya:", True), ("Here is what the articles say:", True), ("Theo các bài báo:", True),
    ("Yamanashi agreed to three things:", False),  # names a place: a claim
    ("Nghe An attracted 3 projects:", False),
    ("Yamanashi agreed.", False),
])
def test_lead_ins(sentence, lead_in):
    assert is_lead_in(sentence) is lead_in


# ------------------------------------------------------------------------------ with the real model and index


@pytest.fixture(scope="module")
def passages(seed_assistant):
    return seed_assistant.store.all_passages()


def passage_with(passages, phrase: str, doc_id: str | None = None):
    return next(p for p in passages if phrase in p.text and doc_id in (None, p.doc_id))


def judge(seed_assistant, passages, claim: str, phrase: str, doc_id: str | None = None):
    passage = passage_with(passages, phrase, doc_id)
    own = seed_assistant.store.sentence_vectors([passage.row_id])[passage.row_id]
    return supports(claim, seed_assistant.embedder.embed_query(claim), {1: (passage.text, own)}, seed_assistant.embedder)


def test_labelled_claims_false_flags_and_misses(seed_assistant, passages):
    rows = [json.loads(line) for line in CLAIMS.read_text(encoding="utf-8").splitlines()]
    verdicts = [(row, judge(seed_assistant, passages, row["claim"], row["anchor"], row["doc_id"]).backed)
                for row in rows]
    false_flags = [row["claim"] for row, backed in verdicts if row["supported"] and not backed]
    misses = [row["claim"] for row, backed in verdicts if not row["supported"] and backed]
    assert len(false_flags) / sum(row["supported"] for row in rows) <= 0.10, false_flags
    # 4 of 22 with the pooled sentence vectors of index format 4 (3 of 22 with separately encoded sentences),
    # all claims unrelated to a passage that names the same people and places
    assert len(misses) / sum(not row["supported"] for row in rows) <= 0.20, misses
    # a wrong place, organisation or number is never taken for support
    assert not [claim for row, backed in verdicts for claim in [row["claim"]]
                if backed and row["kind"] in ("wrong_entity", "wrong_number")]


def test_a_correct_english_rendering_of_a_malay_sentence_is_backed(seed_assistant, passages):
    assert judge(seed_assistant, passages, "Yamanashi agreed to the cooperation proposal.", YAMANASHI_AGREED).backed


def test_the_wrong_mayor_is_not_backed_though_most_of_its_words_are_there(seed_assistant, passages):
    verdict = judge(seed_assistant, passages, "Wali Kota Daejeon adalah Bapak Shin Sang Jin.", SEONGNAM_MAYOR)
    assert not verdict.backed and verdict.missing_names and "Daejeon" in verdict.reason()


def test_an_office_the_passage_never_names_is_not_backed(seed_assistant, passages):
    """What local-llm answered to "Siapa Wali Kota Daejeon?" (2026-12-02): every name is in the cited
    Vietnamese article, which says Mr Tho is a vice chairman of Ho Chi Minh City's council, not a mayor."""
    claim = "Wali Kota Daejeon adalah ông Nguyễn Văn Thọ, Phó Chủ tịch Thường trực HĐND TP HCM."
    verdict = judge(seed_assistant, passages, claim, "Ông Nguyễn Văn Thọ, Phó Chủ tịch Thường trực HĐND TP HCM")
    assert verdict.missing_names == () and verdict.missing_roles == ("mayor",)
    assert not verdict.backed and "mayor" in verdict.reason()
    # said in the question's language: a Vietnamese user read "không nêu chức danh mayor"
    assert verdict.reason("vi") == "nguồn của câu này không nêu chức danh thị trưởng"
    assert verdict.reason("id") == "sumbernya tidak menyebut jabatan wali kota"
    seongnam = judge(seed_assistant, passages, "The mayor of Seongnam is Shin Sang Jin.", SEONGNAM_MAYOR)
    assert seongnam.missing_roles == () and seongnam.backed


JAPANESE_LOCALITIES = "terdapat pemimpin dan wakil dari 18 lokaliti"


def test_a_number_the_passage_gives_about_something_else_is_not_backed(seed_assistant, passages):
    """The passage gives 34 (Vietnam's provinces at the forum) and 18 (the Japanese localities): every number of
    the wrong claim is in it, as in local-llm's "34 kegiatan penghubung" (eval/README.md)."""
    wrong = judge(seed_assistant, passages, "Leaders and representatives of 34 Japanese localities attended the forum.",
                  JAPANESE_LOCALITIES)
    assert wrong.missing_numbers == () and wrong.misplaced_numbers == ("34",)
    assert not wrong.backed and "34 about something else" in wrong.reason()
    right = judge(seed_assistant, passages, "Leaders and representatives of 18 Japanese localities attended the forum.",
                  JAPANESE_LOCALITIES)
    assert right.misplaced_numbers == () and right.backed


def test_numbers_written_side_by_side_are_not_told_apart_by_their_words(seed_assistant):
    """A date's day and year, or a range's two ends, share their context: neither is taken for the other's place."""
    passage = ("Promosi itu berlangsung selama tiga pekan, mulai dari 1 Mei hingga 24 Mei 2025. "
               "Sebanyak 120 toko ikut serta dalam promosi tersebut.")
    spans = split_sentences(passage, "id")
    alone = seed_assistant.embedder.embed_passages([passage[a:b] for a, b in spans])
    own = SentenceVectors(spans, alone, alone)
    claim = "Promosi itu berlangsung dari 1 Mei hingga 24 Mei 2025."
    verdict = supports(claim, seed_assistant.embedder.embed_query(claim), {1: (passage, own)}, seed_assistant.embedder)
    assert verdict.misplaced_numbers == () and verdict.backed
    swapped = "Sebanyak 24 toko ikut serta dalam promosi tersebut."
    verdict = supports(swapped, seed_assistant.embedder.embed_query(swapped), {1: (passage, own)},
                       seed_assistant.embedder)
    assert verdict.misplaced_numbers == ("24",) and not verdict.backed


def test_a_country_is_found_under_its_name_in_another_language(seed_assistant, passages):
    claim = "The Daejeon City Council delegation from South Korea was led by its Vice Chairman Hwang Kyoung Ah."
    verdict = judge(seed_assistant, passages, claim, "Đoàn Hội đồng TP Daejeon - Hàn Quốc")
    assert verdict.missing_names == () and verdict.backed


def check(seed_assistant, passages, answer: str, *phrases: str, lang: str = "en"):
    hits = [Hit(rank, 1.0, passage_with(passages, phrase)) for rank, phrase in enumerate(phrases, start=1)]
    sentences = seed_assistant.store.sentence_vectors(hit.passage.row_id for hit in hits)
    return check_answer(answer, [(hit,) for hit in hits], seed_assistant.embedder, sentences, lang)


def test_only_the_unbacked_sentence_is_flagged(seed_assistant, passages):
    checked = check(seed_assistant, passages, "Yamanashi agreed to the cooperation proposal [1]. "
                    "The Eiffel Tower was painted green by Gustave Eiffel in 1889 [1].", YAMANASHI_AGREED)
    assert checked.unusable is None
    assert checked.text == ("Yamanashi agreed to the cooperation proposal. [1] "
                            "The Eiffel Tower was painted green by Gustave Eiffel in 1889. [1] ⚠")
    assert checked.notes == ("⚠ “The Eiffel Tower was painted green by Gustave Eiffel in 1889.”: its source does not "
                             "mention Eiffel Tower, Gustave Eiffel.",)
    assert [c.supported for c in checked.citations] == [True]  # [1] backs the first sentence


def test_a_sentence_without_a_citation_is_flagged_but_a_lead_in_is_not(seed_assistant, passages):
    checked = check(seed_assistant, passages, "Here is what the articles say:\n"
                    "Yamanashi agreed to the cooperation proposal [1]. Japan will build a new airport.",
                    YAMANASHI_AGREED)
    assert checked.text == ("Here is what the articles say:\nYamanashi agreed to the cooperation proposal. [1] "
                            "Japan will build a new airport. ⚠")
    assert checked.notes == ("⚠ “Japan will build a new airport.”: it cites no source.",)


def test_the_notes_are_in_the_language_of_the_answer(seed_assistant, passages):
    # a Vietnamese user read "⚠ …: it cites no source." and "Removed citation marker(s) …" in English
    checked = check(seed_assistant, passages, "Yamanashi đồng ý với nội dung đề xuất hợp tác của tỉnh Thanh Hóa [1][n]. "
                    "Nhật Bản sẽ xây dựng một sân bay mới tại tỉnh này.", YAMANASHI_AGREED, lang="vi")
    assert "Đã bỏ dấu trích dẫn [n]: không có nguồn đó." in checked.notes
    assert "⚠ “Nhật Bản sẽ xây dựng một sân bay mới tại tỉnh này.”: câu này không dẫn nguồn." in checked.notes


def test_placeholders_and_dangling_markers_are_dropped_with_one_note(seed_assistant, passages):
    checked = check(seed_assistant, passages, "Yamanashi agreed to the cooperation proposal [1][n][7].",
                    YAMANASHI_AGREED)
    assert checked.text == "Yamanashi agreed to the cooperation proposal. [1]"
    assert checked.notes == ("Removed citation marker(s) [n], [7]: no such source.",)


def test_markers_before_sentences_are_checked_against_the_right_passage(seed_assistant, passages):
    checked = check(seed_assistant, passages, "[1] Shin Sang Jin is the mayor of Seongnam. "
                    "[2] Yamanashi agreed to the cooperation proposal.", SEONGNAM_MAYOR, YAMANASHI_AGREED)
    assert checked.text == ("Shin Sang Jin is the mayor of Seongnam. [1] "
                            "Yamanashi agreed to the cooperation proposal. [2]")
    assert checked.notes == () and all(c.supported for c in checked.citations)


@pytest.mark.parametrize(("answer", "why"), [
    ("[1] [2] [3] [4] [5]", "markers_only"),
    ("Wali Kota Daejeon adalah Bapak Shin Sang Jin. [1]", "unbacked"),
    ("Yamanashi agreed to the cooperation proposal.", "uncited"),
])
def test_an_answer_with_nothing_backed_is_unusable(seed_assistant, passages, answer, why):
    checked = check(seed_assistant, passages, answer, SEONGNAM_MAYOR)
    assert checked.unusable == why


def test_a_claim_is_checked_against_every_passage_of_its_article(seed_assistant, passages):
    """Sources are articles: the name in one passage backs a claim citing the article, and the citation
    quotes that passage; another article (Daejeon's) still does not back Seongnam's mayor."""
    seongnam = [p for p in passages if p.doc_id == SEONGNAM_DOC]
    without_name = next(p for p in seongnam if "Shin Sang Jin" not in p.text)
    with_name = passage_with(passages, SEONGNAM_MAYOR)
    source = (Hit(1, 1.0, without_name), Hit(2, 0.9, with_name))
    sentences = seed_assistant.store.sentence_vectors(p.row_id for p in (without_name, with_name))
    checked = check_answer("The mayor of Seongnam is Shin Sang Jin [1].", [source], seed_assistant.embedder,
                           sentences, "en")
    assert checked.unusable is None and checked.notes == ()
    [citation] = checked.citations
    assert citation.supported and citation.hit.passage == with_name and "Shin Sang Jin" in citation.quote
    daejeon = tuple(Hit(n, 1.0, p) for n, p in enumerate((p for p in passages if p.doc_id == DAEJEON_DOC), 1))
    sentences = seed_assistant.store.sentence_vectors(hit.passage.row_id for hit in daejeon)
    wrong = check_answer("Wali Kota Daejeon adalah Bapak Shin Sang Jin [1].", [daejeon], seed_assistant.embedder,
                         sentences, "id")
    assert wrong.unusable and "Shin Sang Jin" in wrong.notes[0]


def test_a_cited_source_that_does_not_say_the_claim_loses_its_marker(seed_assistant, passages):
    """local-llm's reply to q003 on a tail asking for a number after each sentence (eval/README.md): [2] is
    the Thanh Hoa-Yamanashi forum, which never mentions the 14 businesses; only [1] stays, with a note."""
    claim = "14 Korean businesses took part in the Seongnam delegation's business trip to Thanh Hoa."
    checked = check(seed_assistant, passages, f"{claim} [1][2]", "hanya 14 bisnis", YAMANASHI_AGREED)
    assert checked.unusable is None and checked.text == f"{claim} [1]"
    assert checked.notes == (f"Removed citation marker(s) [2] from “{claim}”: that source does not say it.",)
    assert [(c.n, c.supported) for c in checked.citations] == [(1, True)]


def test_two_sources_together_do_not_back_what_neither_says(seed_assistant, passages):
    """Seongnam's article names its mayor, Daejeon's names Daejeon: citing both, the wrong mayor is still wrong."""
    checked = check(seed_assistant, passages, "Wali Kota Daejeon adalah Bapak Shin Sang Jin. [1][2]",
                    SEONGNAM_MAYOR, "Đoàn Hội đồng TP Daejeon - Hàn Quốc")
    assert checked.unusable and checked.text == "Wali Kota Daejeon adalah Bapak Shin Sang Jin. [1][2] ⚠"
    assert "its source does not mention" in checked.notes[0]
    assert [(c.n, c.supported) for c in checked.citations] == [(1, False), (2, False)]
