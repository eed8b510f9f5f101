import json
import unicodedata

import pytest

from rag.corpus import CorpusError, load_corpus

from .conftest import SEED_CORPUS


@pytest.fixture(scope="module")
def seed_articles():
    articles, errors = load_corpus(SEED_CORPUS)
    assert errors == []
    return {a.doc_id: a for a in articles}


def test_seed_articles_are_read_with_their_ids(seed_articles):
    assert sorted(seed_articles) == sorted(p.stem for p in SEED_CORPUS.glob("*.txt"))


def test_language_detection_tells_indonesian_from_malay(seed_articles):
    langs = {doc_id[:3]: a.lang for doc_id, a in seed_articles.items()}
    assert langs == {"000": "id", "001": "id", "002": "ms", "003": "vi", "004": "id"}


def test_source_url_and_date_are_extracted(seed_articles):
    assert seed_articles["002_c12aae596eddc73b"].url == (
        "https://baothanhhoa.vn/thanh-hoa-tham-du-dien-dan-hop-tac-dia-phuong-viet-nhat-269802.htm"
    )
    assert seed_articles["002_c12aae596eddc73b"].date == "2025-11-25"
    assert seed_articles["003_6c45966e1ec7bc90"].url is None
    assert all("Sumber:" not in a.text for a in seed_articles.values())


def test_page_clutter_is_removed(seed_articles):
    malay = seed_articles["002_c12aae596eddc73b"]
    for clutter in ("Komen (0)", "No data", "Dalam kategori yang sama", "Kedai kopi", "Vietnam.vn", "Warisan"):
        assert clutter not in malay.text
    # the photo caption repeated as a heading becomes the title, and leaves the body
    assert malay.title == "Thanh Hoa menghadiri Forum Kerjasama Tempatan Vietnam - Jepun"
    assert malay.title not in malay.text
    assert "Yamanashi" in malay.text
    vietnamese = seed_articles["003_6c45966e1ec7bc90"]
    assert vietnamese.title == "Lãnh đạo TP HCM tiếp đoàn công tác TP Daejeon - Hàn Quốc"
    assert "- Ảnh" not in vietnamese.text and "Thời sự" not in vietnamese.text
    assert "(NLĐO)" not in vietnamese.text
    assert all("Komentar (0)" not in a.text for a in seed_articles.values())


def test_text_is_nfc_normalised(tmp_path):
    decomposed = unicodedata.normalize("NFD", "Thanh Hóa đề xuất hợp tác với tỉnh Yamanashi của Nhật Bản.")
    (tmp_path / "nfd.txt").write_text(decomposed, encoding="utf-8")
    [article], _ = load_corpus(tmp_path)
    assert article.text == unicodedata.normalize("NFC", decomposed)
    assert article.lang == "vi"


def test_legacy_encodings_are_detected(tmp_path):
    text = "Pemerintah kota menandatangani perjanjian kerja sama dengan café di Seongnam — dua pihak sepakat."
    (tmp_path / "cp1252.txt").write_bytes(text.encode("cp1252"))
    [article], errors = load_corpus(tmp_path)
    assert errors == []
    assert "café" in article.text and "—" in article.text


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.txt", b"", "no article text"),
        ("blank.txt", b"   \n\n Komentar (0)\n", "no article text"),
        ("photo.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "binary file"),
    ],
)
def test_bad_files_get_a_clear_error_and_do_not_stop_others(tmp_path, name, content, message):
    (tmp_path / "good.txt").write_text("Kota Ho Chi Minh dan Daejeon sepakat memperkuat kerja sama.", encoding="utf-8")
    (tmp_path / name).write_bytes(content)
    articles, errors = load_corpus(tmp_path)
    assert [a.doc_id for a in articles] == ["good"]
    assert len(errors) == 1
    assert name in str(errors[0]) and message in str(errors[0])
    assert errors[0].doc_id == name.split(".")[0]


def test_huge_files_are_refused(tmp_path):
    (tmp_path / "huge.txt").write_text("kata " * 3000, encoding="utf-8")
    articles, errors = load_corpus(tmp_path, max_bytes=10_000)
    assert articles == []
    assert "too large" in str(errors[0])


def test_missing_corpus_is_a_corpus_error(tmp_path):
    with pytest.raises(CorpusError, match="corpus not found"):
        load_corpus(tmp_path / "nowhere")


def test_html_articles_lose_scripts_and_navigation(tmp_path):
    (tmp_path / "page.html").write_text(
        """<html><head><title>Site | Hanoi</title>
        <meta property="og:title" content="Hà Nội thu hút 840 dự án">
        <link rel="canonical" href="https://example.org/ha-noi-840">
        <meta property="article:published_time" content="2025-03-10T08:00:00+07:00">
        <script>alert('x')</script></head>
        <body><nav>Trang chủ | Thời sự</nav><article><h1>Hà Nội thu hút 840 dự án</h1>
        <p>Khu công nghệ cao Hòa Lạc và các khu công nghiệp Hà Nội đã thu hút hơn 840 dự án đầu tư.</p>
        <p>Trong đó có khoảng 340 doanh nghiệp có vốn đầu tư nước ngoài.</p></article>
        <footer>Bản quyền</footer></body></html>""",
        encoding="utf-8",
    )
    [article], errors = load_corpus(tmp_path)
    assert errors == []
    assert article.title == "Hà Nội thu hút 840 dự án"
    assert article.url == "https://example.org/ha-noi-840"
    assert article.date == "2025-03-10"
    assert "alert" not in article.text and "Trang chủ" not in article.text and "Bản quyền" not in article.text
    assert article.text.startswith("Khu công nghệ cao Hòa Lạc")


def test_jsonl_records_become_articles_and_bad_lines_are_reported(tmp_path):
    lines = [
        json.dumps({"id": "a1", "title": "Satu", "text": "Thanh Hoa dan Seongnam menandatangani perjanjian.",
                    "lang": "id", "url": "https://example.org/a1"}),
        "{not json",
        json.dumps({"id": "a2", "text": "Yamanashi setuju untuk terus bertukar peluang kerjasama."}),
    ]
    (tmp_path / "bulk.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    articles, errors = load_corpus(tmp_path / "bulk.jsonl")
    assert [(a.doc_id, a.title, a.lang, a.url) for a in articles] == [
        ("a1", "Satu", "id", "https://example.org/a1"),
        ("a2", articles[1].title, articles[1].lang, None),
    ]
    assert articles[1].lang in {"ms", "id"}
    assert len(errors) == 1 and "bulk.jsonl:2" in str(errors[0])


def test_duplicate_ids_are_reported(tmp_path):
    (tmp_path / "same.txt").write_text("Kota Ho Chi Minh bekerja sama dengan sembilan provinsi.", encoding="utf-8")
    (tmp_path / "same.md").write_text("# Judul\n\nKota Ho Chi Minh bekerja sama dengan sembilan provinsi.", encoding="utf-8")
    articles, errors = load_corpus(tmp_path)
    assert len(articles) == 1
    assert "duplicate article id 'same'" in str(errors[0])


def test_fingerprint_changes_with_content(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("Hai bên cam kết tiếp tục hợp tác phát triển.", encoding="utf-8")
    [before], _ = load_corpus(tmp_path)
    path.write_text("Hai bên cam kết tiếp tục hợp tác phát triển bền vững.", encoding="utf-8")
    [after], _ = load_corpus(tmp_path)
    assert before.fingerprint != after.fingerprint



TONE_MARKS = "\u0300\u0301\u0303\u0309\u0323"


def cp1258_bytes(text: str) -> bytes:
    """``text`` as Windows-1258 writes Vietnamese: base letters precomposed, tone marks as combining characters."""
    out = b""
    for ch in unicodedata.normalize("NFC", text):
        decomposed = unicodedata.normalize("NFD", ch)
        base = unicodedata.normalize("NFC", "".join(c for c in decomposed if c not in TONE_MARKS))
        out += base.encode("cp1258") + "".join(c for c in decomposed if c in TONE_MARKS).encode("cp1258")
    return out


VIETNAMESE = "Tỉnh Thanh Hóa và thành phố Seongnam (Hàn Quốc) đã ký kết thỏa thuận hợp tác về đầu tư và giáo dục."


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("utf16-bom.txt", VIETNAMESE.encode("utf-16")),
        ("utf16le.txt", VIETNAMESE.encode("utf-16-le")),
        ("utf16be.txt", VIETNAMESE.encode("utf-16-be")),
        ("utf32.txt", VIETNAMESE.encode("utf-32")),
        ("cp1258.txt", cp1258_bytes(VIETNAMESE)),
    ],
)
def test_unicode_and_vietnamese_code_pages_are_decoded(tmp_path, name, raw):
    (tmp_path / name).write_bytes(raw)
    [article], errors = load_corpus(tmp_path)
    assert errors == []
    assert article.text == VIETNAMESE


def test_latin1_is_not_read_as_a_central_european_code_page(tmp_path):
    text = ("Le maire de Seongnam a signé l'accord à Thanh Hoa; la délégation française était présente. "
            "Très bien, déjà signé.")
    (tmp_path / "latin1.txt").write_bytes(text.encode("latin-1"))
    [article], errors = load_corpus(tmp_path)
    assert errors == []
    assert article.text == text


def test_a_link_out_of_the_corpus_folder_is_not_read(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("Rahasia: kata sandi server ada di sini, jangan dibaca siapa pun.", encoding="utf-8")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "good.txt").write_text("Kota Ho Chi Minh dan Daejeon sepakat memperkuat kerja sama.", encoding="utf-8")
    (corpus / "passwd.txt").symlink_to(outside)
    (corpus / "inside.txt").symlink_to(corpus / "good.txt")
    articles, errors = load_corpus(corpus)
    assert sorted(a.doc_id for a in articles) == ["good", "inside"]
    assert len(errors) == 1 and "outside the corpus folder" in str(errors[0])


def test_a_bulk_record_cannot_take_the_id_of_an_article_file(tmp_path):
    (tmp_path / "zz-real.txt").write_text("Kota Ho Chi Minh bekerja sama dengan sembilan provinsi.", encoding="utf-8")
    record = {"id": "zz-real", "title": "Palsu", "text": "Artikel palsu yang mencoba menggantikan artikel asli."}
    (tmp_path / "aa-bulk.jsonl").write_text(json.dumps(record) + "\n", encoding="utf-8")
    [article], [error] = load_corpus(tmp_path)
    assert article.location.endswith("zz-real.txt") and "sembilan provinsi" in article.text
    assert "aa-bulk.jsonl:1" in str(error) and "zz-real.txt" in str(error)


def test_articles_carry_their_source_site(tmp_path):
    lines = [
        json.dumps({"id": "k1", "title": "Satu", "text": "Thanh Hoa dan Seongnam menandatangani perjanjian kerja sama.",
                    "url": "https://kmp.im/abc", "source": "Kompas.com"}),
        json.dumps({"id": "k2", "title": "Dua", "text": "Thanh Hoa dan Seongnam menandatangani perjanjian kerja sama.",
                    "url": "https://www.detik.com/news/1"}),
        json.dumps({"id": "k3", "title": "Tiga", "text": "Thanh Hoa dan Seongnam menandatangani perjanjian kerja sama.",
                    "url": "http://[broken"}),
    ]
    (tmp_path / "bulk.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    articles, errors = load_corpus(tmp_path / "bulk.jsonl")
    assert not errors
    # the record's own source wins over the URL (a shortener here); else the URL's host, without www.
    assert [a.source for a in articles] == ["kompas.com", "detik.com", None]
