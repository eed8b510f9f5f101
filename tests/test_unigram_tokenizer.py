"""The question encoder's tokenizer cut to each batch's words gives the ids of the whole tokenizer.json."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from rag.corpus import load_corpus
from rag.embeddings import ONNX_PIECES, ONNX_TOKENIZER, EncoderSpec, WholeTokenizer, question_tokenizer
from rag.unigram_tokenizer import UnigramForWords, pieces_document

from .conftest import ROOT, SEED_CORPUS

AWKWARD = [
    "",
    "   ",
    "a</s>b <mask> x<s>y <unk><pad>",  # special tokens written in the text are cut out before normalising
    "ＡＢＣ\u0301 ☃ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u200b\u00a0tab\there",  # compatibility characters, zero-width and odd spaces
    "Thanh Hoa\u0301 và Đà Nẵng, TP.HCM",  # decomposed and composed Vietnamese
    "習近平新時代中國特色社會主義思想 ქართული ภาษาไทย 한국어",  # the longest pieces, other scripts
    "Thị trưởng " * 400,  # cut at the model's 512 tokens
]


@pytest.fixture(scope="module")
def spec(embedder) -> EncoderSpec:
    return EncoderSpec.load(embedder.onnx_folder)


@pytest.fixture(scope="module")
def export(embedder, tmp_path_factory):
    """A copy of the session's exported tokenizer, so that its pieces file can be made and broken."""
    folder = tmp_path_factory.mktemp("export")
    shutil.copy2(embedder.onnx_folder / ONNX_TOKENIZER, folder / ONNX_TOKENIZER)
    return folder


def eval_questions() -> list[str]:
    return [json.loads(line)["question"] for name in ("questions.jsonl", "questions-news.jsonl")
            for line in (ROOT / "eval" / name).read_text(encoding="utf-8").splitlines()]


def test_the_cut_tokenizer_gives_the_ids_of_the_whole_one(export, spec):
    cut, whole = question_tokenizer(export, spec), WholeTokenizer(export, spec)
    assert isinstance(cut, UnigramForWords)
    articles, _ = load_corpus(SEED_CORPUS)
    lines = [line for article in articles for line in f"{article.title}\n{article.text}".splitlines() if line.strip()]
    questions = ["query: " + q for q in eval_questions()]
    batches = [questions, ["passage: " + line for line in lines], [a.text for a in articles], AWKWARD]
    batches += [[text] for batch in batches for text in batch]  # alone, padded to itself
    for batch in batches:
        ids, mask = cut.encode_batch(batch)
        expected_ids, expected_mask = whole.encode_batch(batch)
        assert ids.tolist() == expected_ids.tolist(), batch[:3]
        assert mask.tolist() == expected_mask.tolist()
    assert len(lines) > 50 and len(questions) > 100


def test_the_pieces_file_is_made_once_and_again_when_the_tokenizer_changes(export, spec):
    (export / ONNX_PIECES).unlink(missing_ok=True)
    question_tokenizer(export, spec)
    made = (export / ONNX_PIECES).stat().st_mtime_ns
    question_tokenizer(export, spec)
    assert (export / ONNX_PIECES).stat().st_mtime_ns == made
    tokenizer = export / ONNX_TOKENIZER
    os.utime(tokenizer, ns=(tokenizer.stat().st_atime_ns, tokenizer.stat().st_mtime_ns + 10**9))  # a new export
    (export / ONNX_PIECES).write_text("{not json", encoding="utf-8")
    assert isinstance(question_tokenizer(export, spec), UnigramForWords)
    assert (export / ONNX_PIECES).stat().st_mtime_ns != made
    assert not list(export.glob("*.partial"))


def test_a_tokenizer_that_cannot_be_cut_is_loaded_whole(tmp_path):
    word_level = Tokenizer(models.WordLevel({"[UNK]": 0, "[PAD]": 1, "hello": 2, "world": 3}, unk_token="[UNK]"))
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    word_level.save(str(tmp_path / ONNX_TOKENIZER))
    assert pieces_document((tmp_path / ONNX_TOKENIZER).read_text(encoding="utf-8")) is None
    spec = EncoderSpec(dim=4, max_length=8, pad_id=1, pad_token="[PAD]", padding_side="right",
                       truncation_side="right", prompts={})
    tokenizer = question_tokenizer(tmp_path, spec)
    assert isinstance(tokenizer, WholeTokenizer)
    ids, mask = tokenizer.encode_batch(["hello world", "world"])
    assert ids.tolist() == [[2, 3], [3, 1]] and mask.tolist() == [[1, 1], [1, 0]]
