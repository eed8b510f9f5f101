"""Language identification on real news and real questions: ``python -m bench language_id [--articles N]``.

Indonesian and Malay are close enough that word lists fitted to a few
articles do not carry over, so this measures ``rag.language.detect_language``
on data it was not tuned on: the news corpus (kompas.com and detik.com are
Indonesian, majoriti.com.my Malay), the Indonesian questions of the eval set
and of the external benchmark (short texts, where the two are hardest to tell
apart), and the seed articles as the parser reads them.  Also every question set's Vietnamese questions
stripped of their diacritics, as people often type them, and its English and Indonesian questions, which
must not be taken for them.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

from rag.corpus import load_corpus
from rag.language import detect_language, strip_diacritics

from .common import ROOT, SHARED_BENCH, table

NEWS = SHARED_BENCH.parent / "news" / "articles.jsonl"
SOURCE_LANGUAGE = {"kompas.com": "id", "detik.com": "id", "majoriti.com.my": "ms"}


def news_articles(per_language: int) -> list[tuple[str, str]]:
    """(text, language) of up to ``per_language`` Indonesian and Malay articles, in file order."""
    taken: Counter = Counter()
    articles = []
    with NEWS.open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            lang = SOURCE_LANGUAGE.get(record["source"])
            if lang and taken[lang] < per_language:
                taken[lang] += 1
                articles.append((f"{record['title']}\n{record['text']}", lang))
    return articles


def questions_in(path: Path, lang: str) -> list[str]:
    with path.open(encoding="utf-8") as lines:
        return [q["question"] for q in map(json.loads, lines) if q["lang"] == lang]


def accuracy(samples: list[tuple[str, str]]) -> tuple[float, Counter]:
    confusion = Counter((lang, detect_language(text)) for text, lang in samples)
    return sum(n for (want, got), n in confusion.items() if want == got) / len(samples), confusion


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench language_id")
    parser.add_argument("--articles", type=int, default=1000, help="articles per language (Malay has 850)")
    args = parser.parse_args(argv)

    rows = []
    articles = news_articles(args.articles)
    started = time.process_time()
    for lang in ("id", "ms"):
        share, confusion = accuracy([a for a in articles if a[1] == lang])
        rows.append([f"news articles ({lang})", sum(1 for a in articles if a[1] == lang), share, dict(confusion)])
    elapsed = time.process_time() - started
    share, _ = accuracy(articles)
    rows.append(["news articles (id + ms)", len(articles), share, f"{1000 * elapsed / len(articles):.1f} ms CPU/article"])
    question_sets = (ROOT / "eval" / "questions.jsonl", ROOT / "eval" / "questions-news.jsonl", SHARED_BENCH / "questions.jsonl")
    for name, path in (("eval questions (id)", question_sets[0]), ("xquad-facqa questions (id)", question_sets[2])):
        share, confusion = accuracy([(q, "id") for q in questions_in(path, "id")])
        rows.append([name, sum(confusion.values()), share, dict(Counter(got for (_, got) in confusion.elements()))])
    for lang, typed in (("vi", strip_diacritics), ("en", str), ("id", str)):
        samples = [(typed(q), lang) for path in question_sets for q in questions_in(path, lang)]
        share, confusion = accuracy(samples)
        label = "without diacritics" if lang == "vi" else "as written"
        rows.append([f"all question sets ({lang}, {label})", len(samples), share,
                     dict(Counter(got for (_, got) in confusion.elements()))])
    seed, _ = load_corpus(ROOT / "corpus")
    rows.append(["seed articles", len(seed), "", {a.doc_id: a.lang for a in seed}])
    print(table(["data", "n", "accuracy", "detail"], rows))


if __name__ == "__main__":
    main()
