import pytest

from rag.chunking import chunk_article, split_sentences
from rag.corpus import load_corpus
from rag.tokens import count_tokens

from .conftest import SEED_CORPUS

ENCODING = "o200k_base"


@pytest.fixture(scope="module")
def articles(cache_dir):
    articles, _ = load_corpus(SEED_CORPUS)
    return articles


@pytest.mark.parametrize(("max_tokens", "overlap"), [(220, 40), (64, 16), (512, 0)])
def test_chunks_respect_the_budget_and_map_back_to_the_article(articles, max_tokens, overlap):
    for article in articles:
        chunks = chunk_article(article, max_tokens, overlap, ENCODING)
        assert chunks, article.doc_id
        assert [c.position for c in chunks] == list(range(len(chunks)))
        for chunk in chunks:
            assert chunk.text == article.text[chunk.start : chunk.end]
            assert count_tokens(chunk.text, ENCODING) <= max_tokens + 2  # joins may merge a token or two
            assert chunk.title == article.title
            assert chunk.chunk_id == f"{article.doc_id}#{chunk.position}"
        # the whole article is covered, in order
        assert chunks[0].start == 0 and chunks[-1].end == len(article.text.rstrip())
        for a, b in zip(chunks, chunks[1:]):
            assert a.start < b.start
            assert b.start <= a.end or not article.text[a.end : b.start].strip(), "text skipped between chunks"


def test_consecutive_chunks_overlap_by_whole_sentences(articles):
    article = max(articles, key=lambda a: len(a.text))
    chunks = chunk_article(article, 120, 40, ENCODING)
    overlapping = [(a, b) for a, b in zip(chunks, chunks[1:]) if b.start < a.end]
    assert overlapping, "no chunk shares text with the previous one"
    sentence_starts = {start for start, _ in split_sentences(article.text, article.lang)}
    assert all(b.start in sentence_starts for _, b in overlapping)
    assert all(count_tokens(article.text[b.start : a.end], ENCODING) <= 40 for a, b in overlapping)


def test_sentences_do_not_break_after_abbreviations():
    text = "Tn. Nguyen Van Thi hadir di TP. HCM bersama Bapak Shin. Produk benih, mesin dll. dari perusahaan dikonsumsi."
    sentences = [text[s:e] for s, e in split_sentences(text, "id")]
    assert sentences == [
        "Tn. Nguyen Van Thi hadir di TP. HCM bersama Bapak Shin.",
        "Produk benih, mesin dll. dari perusahaan dikonsumsi.",
    ]


def test_paragraph_breaks_end_sentences():
    text = "Thanh Hoa menghadiri forum\n\nDaejeon là nơi tập trung nhiều viện nghiên cứu."
    assert [text[s:e] for s, e in split_sentences(text, "vi")] == [
        "Thanh Hoa menghadiri forum",
        "Daejeon là nơi tập trung nhiều viện nghiên cứu.",
    ]


def test_a_sentence_longer_than_a_chunk_is_cut_into_windows(articles):
    from dataclasses import replace

    long_sentence = ", ".join(f"mục {i} về hợp tác đô thị thông minh" for i in range(200))
    article = replace(articles[0], text=long_sentence + ".")
    chunks = chunk_article(article, 100, 10, ENCODING)
    assert len(chunks) > 5
    assert "".join(c.text for c in chunks) == article.text
    assert all(c.n_tokens <= 100 for c in chunks)


def _article(title: str, text: str):
    from rag.corpus import Article

    return Article("doc", title, text, "id", None, None, "doc.txt", "0")


def test_a_real_title_is_embedded_with_every_passage(articles):
    article = max(articles, key=lambda a: len(a.text))
    chunks = chunk_article(article, 64, 16, ENCODING)
    assert len(chunks) > 1
    assert all(c.embedding_text() == f"{article.title}\n{c.text}" for c in chunks)


def test_a_title_made_from_the_opening_words_is_not_embedded_again():
    text = "Wali Kota Bogor meresmikan jembatan baru sepanjang 120 meter di atas Sungai Ciliwung pada hari Senin pagi. " * 3
    made_up = "Wali Kota Bogor meresmikan jembatan baru sepanjang 120 meter di atas Sungai Ciliwung pada…"
    for title in (made_up, "Wali Kota Bogor meresmikan jembatan baru"):
        chunks = chunk_article(_article(title, text), 40, 0, ENCODING)
        assert len(chunks) > 1 and all(c.embedding_text() == c.text for c in chunks)
    [chunk] = chunk_article(_article("Jembatan baru di Bogor", text[:60]), 40, 0, ENCODING)
    assert chunk.embedding_text() == f"Jembatan baru di Bogor\n{chunk.text}"


def test_an_over_long_sentence_is_cut_into_even_pieces_without_a_tiny_tail():
    sentence = " ".join(f"kata{i}," for i in range(150)) + " ."
    chunks = chunk_article(_article("Daftar", sentence), 64, 0, ENCODING)
    sizes = [c.n_tokens for c in chunks]
    assert len(chunks) > 1 and max(sizes) <= 64 and max(sizes) - min(sizes) <= 1, sizes
    assert "".join(c.text for c in chunks).replace(" ", "") == sentence.replace(" ", "")
