"""The start-up shortcuts give the answers of the slow paths: ``python -m bench parity [--news N] [--language-only]``.

Two shortcuts of a cold ``rag search``/``rag ask`` (bench/README.md §12) are
checked on real text, and every disagreement is printed:

* language detection: :func:`rag.language.detect_language` (Vietnamese decided
  by its own letters, see ``written_in_vietnamese``) against what it did before:
  unaccented Vietnamese by its syllables, everything else by lingua
  (``lingua_language``);
* the question encoder's tokenizer: :class:`rag.unigram_tokenizer.UnigramForWords`
  against the export's whole ``tokenizer.json`` in ``tokenizers``, token ids and
  attention masks, for each text with the prompt the encoder gives it.

The texts: the questions of both eval sets and of the external benchmark, its
passages, the seed articles (title and text, as the parser reads them), the
first N news articles (``../shared/bench/news``), and every sentence-like string
literal of the test suite.
"""

from __future__ import annotations

import argparse
import ast
import json
from collections import Counter
from collections.abc import Iterator
from itertools import islice

from rag.corpus import load_corpus
from rag.embeddings import Embedder, EncoderSpec, WholeTokenizer, question_tokenizer
from rag.language import UNKNOWN, detect_language, lingua_language, unaccented_vietnamese

from .common import ROOT, SHARED_BENCH, table

NEWS = SHARED_BENCH.parent / "news" / "articles.jsonl"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench parity")
    parser.add_argument("--news", type=int, default=1000, help="news articles to include")
    parser.add_argument("--language-only", action="store_true", help="skip the tokenizer comparison (minutes)")
    args = parser.parse_args(argv)
    texts = list(labelled_texts(args.news))
    print(f"{len(texts)} texts\n")
    print("## language detection (with the Vietnamese-letters shortcut vs without)\n")
    print(compare(texts, detect_language, detected_before))
    if args.language_only:
        return
    folder = Embedder().onnx_folder
    spec = EncoderSpec.load(folder)
    fast, full = question_tokenizer(folder, spec), WholeTokenizer(folder, spec)
    print("\n## question-encoder tokens (cut vocabulary vs whole tokenizer.json)\n")
    print(compare(texts, lambda text: _tokens(fast, text), lambda text: _tokens(full, text), show=False))


def detected_before(text: str) -> str:
    """detect_language without the Vietnamese-letters shortcut."""
    sample = text[:4000].strip()
    if not sample:
        return UNKNOWN
    return "vi" if unaccented_vietnamese(sample) else lingua_language(sample)


def _tokens(tokenizer, text: str) -> tuple:
    """Ids and mask of the text as a question and of each of its lines as a passage sentence, in one batch."""
    batch = ["query: " + text.strip()] + ["passage: " + line.strip() for line in text.splitlines() if line.strip()]
    ids, mask = tokenizer.encode_batch(batch)
    return ids.tobytes(), mask.tobytes()


def compare(texts: list[tuple[str, str]], new, old, *, show: bool = True) -> str:
    """A table of agreement per group of texts; disagreements are printed as they are found."""
    agree: Counter = Counter()
    total: Counter = Counter()
    for group, text in texts:
        total[group] += 1
        a, b = new(text), old(text)
        if a == b:
            agree[group] += 1
        else:
            print(f"  DIFFERENT ({group}): {(a, b) if show else ''} {text[:100]!r}")
    rows = [[group, str(total[group]), str(agree[group])] for group in total]
    rows.append(["all", str(sum(total.values())), str(sum(agree.values()))])
    return table(["texts", "n", "same"], rows)


def labelled_texts(news: int) -> Iterator[tuple[str, str]]:
    for name in ("questions.jsonl", "questions-news.jsonl"):
        for line in (ROOT / "eval" / name).read_text(encoding="utf-8").splitlines():
            yield f"eval/{name} questions", json.loads(line)["question"]
    for name, field in (("questions.jsonl", "question"), ("passages.jsonl", "text")):
        for line in (SHARED_BENCH / name).read_text(encoding="utf-8").splitlines():
            yield f"external benchmark {name.split('.')[0]}", json.loads(line)[field]
    articles, _ = load_corpus(ROOT / "corpus")
    for article in articles:
        yield "seed corpus titles", article.title
        yield "seed corpus articles", article.text
    with NEWS.open(encoding="utf-8") as lines:
        for line in islice(lines, news):
            record = json.loads(line)
            yield "news titles", record["title"]
            yield "news articles", record["text"]
    for literal in test_sentences():
        yield "test-suite strings", literal


def test_sentences() -> list[str]:
    """String literals of tests/ that look like text (a letter and a space, 8 to 600 characters), once each."""
    found: dict[str, None] = {}
    for path in sorted((ROOT / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                value = node.value.strip()
                if 8 <= len(value) <= 600 and " " in value and any(c.isalpha() for c in value):
                    found[value] = None
    return list(found)
