"""BM25 from stored term counts (rag.bm25) against the real bm25s building its index from the tokens."""

from __future__ import annotations

import bm25s
import numpy as np

from rag.bm25 import TermCounts
from rag.language import lexical_tokens

TEXTS = [
    "Thành phố Hải Phòng ký kết hợp tác với Incheon.",
    "Wali Kota Daejeon Lee Jang Woo berkunjung ke Incheon pada 2025.",
    "",  # no tokens: bm25s's empty document
    "Ông Shin Sang Jin, Thị trưởng Seongnam, phát biểu tại TP HCM.",
    "Delegasi wilayah Thanh Hoa menghadiri mesyuarat dengan Yamanashi, Thanh Hoa.",
]
QUESTIONS = ["Incheon", "Thanh Hoa Yamanashi", "Seongnam Incheon Incheon", "2025 Daejeon", "unknownword Incheon"]


def corpus(n: int, seed: int) -> list[list[str]]:
    """Real tokens of a few sentences plus skewed random words: repeated terms, rare ones, varied lengths."""
    rng = np.random.default_rng(seed)
    return [lexical_tokens(TEXTS[i % len(TEXTS)]) + [f"w{w % 300}" for w in rng.zipf(1.5, int(rng.integers(0, 40)))]
            for i in range(n)]


def scores(model, question_tokens: list[str]) -> np.ndarray:
    known = [t for t in question_tokens if t in model.vocab_dict]
    return model.get_scores(known)


def questions() -> list[list[str]]:
    return [lexical_tokens(q) + ["w1", "w7", "w250"] for q in QUESTIONS]


def test_the_scores_from_term_counts_are_bm25s_bit_for_bit():
    tokens = corpus(400, 1)
    reference = bm25s.BM25()
    reference.index([t or [""] for t in tokens], show_progress=False)
    ours = TermCounts.of(range(len(tokens)), ["vi"] * len(tokens), tokens).bm25()
    for question in questions():
        assert np.array_equal(scores(ours, question), scores(reference, question))


def test_counts_updated_chunk_by_chunk_score_as_a_clean_count(tmp_path):
    """Removed chunks out, added ones in, saved and loaded between: the same scores as counting the final chunks."""
    tokens = corpus(300, 2)
    added = corpus(40, 3)
    counts = TermCounts.of(range(300), ["vi"] * 300, tokens)
    counts.save(tmp_path)
    gone = set(range(0, 300, 7)) | {5}  # among them a chunk holding the only "w299"s, if any
    updated = TermCounts.load(tmp_path).without(gone).plus(range(300, 340), ["id"] * 40, added)
    kept = [i for i in range(300) if i not in gone]
    clean = TermCounts.of([*kept, *range(300, 340)], ["vi"] * len(kept) + ["id"] * 40,
                          [tokens[i] for i in kept] + added)
    assert updated.row_ids.tolist() == clean.row_ids.tolist() and updated.langs.tolist() == clean.langs.tolist()
    assert sorted(updated.vocabulary) == sorted(clean.vocabulary)  # terms of removed chunks only are forgotten
    for question in questions():
        assert np.array_equal(scores(updated.bm25(), question), scores(clean.bm25(), question))


def test_an_index_of_no_chunks_is_one_empty_document_and_grows(tmp_path):
    counts = TermCounts.of([], [], [])
    assert counts.bm25().scores["num_docs"] == 1
    counts.save(tmp_path)
    grown = TermCounts.load(tmp_path).without([]).plus([1], ["vi"], [["incheon"]])
    assert scores(grown.bm25(), ["incheon"]).tolist() == scores(TermCounts.of([1], ["vi"], [["incheon"]]).bm25(),
                                                                ["incheon"]).tolist()
    assert scores(grown.bm25(), ["incheon"])[0] > 0
