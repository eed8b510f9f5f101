"""Names across languages: which words of a question are names (whether a corpus mentions them: tests/test_stores.py)."""

import json
from pathlib import Path

import pytest

from rag.language import (
    detect_language,
    name_phrases,
    name_tokens,
    shares_words,
    strip_diacritics,
    unaccented_vietnamese,
    written_in,
    written_in_vietnamese,
)

ROOT = Path(__file__).resolve().parents[1]


def test_name_phrases_skip_the_first_word_and_lowercase_words():
    assert name_phrases("Kapan Hai Phong menandatangani perjanjian dengan Incheon?") == ["Hai Phong", "Incheon"]
    # Vietnamese lower-case letters with diacritics are not capitals
    assert name_phrases("Thành phố Hồ Chí Minh ký kết với tỉnh Yamanashi khi nào?") == ["Hồ Chí Minh", "Yamanashi"]


def test_name_phrases_drop_possessives_and_keep_numbers():
    assert name_phrases("How big are Bac Kan's lead reserves?") == ["Bac Kan"]
    tokens = name_tokens("Who signed in 2023 with TP HCM?")
    assert "2023" in tokens and len(tokens) == 2
    assert tokens == name_tokens("Siapa yang menandatangani pada 2023 dengan Kota Ho Chi Minh?")


@pytest.mark.parametrize(
    ("question", "lang"),
    [  # lingua over all languages calls the first three Malay
        ("Kapan Hai Phong menandatangani perjanjian kerja sama dengan Incheon?", "id"),
        ("Berapa luas Taman Teknologi Tinggi Hoa Lac?", "id"),
        ("Di bidang apa saja Seongnam unggul dalam industri teknologi tinggi?", "id"),
        ("When did Hai Phong sign with Incheon?", "en"),
        ("Hải Phòng ký kết với Incheon khi nào?", "vi"),
    ],
)
def test_questions_in_the_users_languages(question, lang):
    assert detect_language(question) == lang


def test_a_short_malay_question_is_taken_as_indonesian():
    # Users ask in Indonesian, not Malay: a window counts as Malay only when lingua is sure, and on one short
    # sentence it never is.  Answering a Malay question in Indonesian is the cheaper mistake.
    assert detect_language("Bilakah Hai Phong menandatangani perjanjian kerjasama dengan Incheon?") == "id"


@pytest.mark.parametrize(
    "question",
    [
        "Thành phố Hồ Chí Minh đã ký thỏa thuận hợp tác với bao nhiêu tỉnh?",
        "Ai là người đứng đầu đoàn công tác của tỉnh Thanh Hóa?",
        "Khu công nghệ cao Hòa Lạc rộng bao nhiêu héc ta?",
        "tphcm dang hop tac voi nhung dia phuong nao trong nuoc va nuoc ngoai?",
    ],
)
def test_vietnamese_typed_without_diacritics_is_vietnamese(question):
    # lingua knows only written Vietnamese: it took such questions for Tagalog, French or English
    typed = strip_diacritics(question)
    assert typed.isascii() and unaccented_vietnamese(typed)
    assert detect_language(typed) == "vi"


@pytest.mark.parametrize(
    ("text", "lang"),
    [  # plain ASCII too, and made of words that are Vietnamese syllables as well ("do", "not", "go", "the")
        ("do not go", "en"),
        ("the cat sat on the mat", "en"),
        ("Who is the mayor of Seongnam?", "en"),
        ("Siapa Wali Kota Daejeon?", "id"),
        ("Berapa luas Taman Teknologi Tinggi Hoa Lac?", "id"),
        ("Bilakah Hai Phong menandatangani perjanjian kerjasama dengan Incheon?", "id"),
    ],
)
def test_other_plain_ascii_text_is_not_taken_for_unaccented_vietnamese(text, lang):
    assert not unaccented_vietnamese(text)
    assert detect_language(text) == lang


def test_diacritics_are_stripped_with_the_case_kept():
    assert strip_diacritics("Đà Nẵng và Hà Nội") == "Da Nang va Ha Noi"


@pytest.mark.parametrize("a, b, shared", [
    ("id", "ms", True), ("ms", "id", True), ("vi", "vi", True), ("id", "vi", False), ("en", "ms", False),
    (None, "id", False),  # a passage whose language is unknown shares names only
])
def test_only_the_same_language_or_indonesian_and_malay_share_words(a, b, shared):
    assert shares_words(a, b) is shared


@pytest.mark.parametrize("text, lang, written", [
    # what local-llm wrote: English around an Indonesian title and a quoted Indonesian source sentence
    ("The mayor of Seongnam who came to Thanh Hoa with the Korean delegation is Bapak Shin Sang Jin, Walikota Kota "
     "Seongnam. This can be seen in the source [2] where it states: \"Bapak Shin Sang Jin, Walikota Kota Seongnam, "
     "menandatangani Perjanjian untuk memperkuat kerja sama yang bersahabat antara kedua daerah.\"", "en", True),
    ("The head of the delegation was Phó Chủ tịch UBND tỉnh Đầu Thanh Tùng [1].", "en", True),
    ("Kedua-dua pihak bersetuju untuk meningkatkan kerjasama dalam bidang pendidikan [1].", "id", True),  # Malay
    ("hai ben dong y hop tac. Kedua belah pihak sepakat untuk meningkatkan kerja sama di bidang pendidikan.", "vi", False),
    ("The two sides agreed to cooperate in education [1].", "vi", False),
    ("Wali Kota Daejeon adalah Bapak Shin Sang Jin. [1]", "en", None),  # one word of its own: too few to tell
    ("The two sides agreed to cooperate in education [1].", "und", None),  # the question's language is not known
])
def test_an_answer_is_read_for_its_own_words_not_the_names_and_quotes_it_takes_from_sources(text, lang, written):
    assert written_in(text, lang) is written


SEED_MALAY = ROOT / "corpus" / "002_c12aae596eddc73b.txt"
NEWS = ROOT.parent / "shared" / "bench" / "news" / "articles.jsonl"


def test_a_malay_article_is_malay_even_with_an_indonesian_sounding_sentence():
    article = SEED_MALAY.read_text(encoding="utf-8")
    assert detect_language(article) == "ms"
    quote = "Kami sangat senang karena bisa bekerja sama, kata Gubernur Provinsi kepada wartawan."
    assert detect_language(quote) == "id"
    assert detect_language(f"{article}\n{quote}") == "ms"


@pytest.mark.skipif(not NEWS.exists(), reason="news corpus not present")
def test_indonesian_and_malay_news_articles_are_told_apart():
    """Real articles from outlets of each country, not seen when the method was chosen (see bench/language_id.py)."""
    sources = {"kompas.com": "id", "detik.com": "id", "majoriti.com.my": "ms"}
    taken = {"id": [], "ms": []}
    with NEWS.open(encoding="utf-8") as lines:
        for record in map(json.loads, lines):
            lang = sources.get(record["source"])
            if lang and len(taken[lang]) < 60:
                taken[lang].append(f"{record['title']}\n{record['text']}")
    for lang, texts in taken.items():
        right = sum(detect_language(text) == lang for text in texts)
        assert right >= 0.95 * len(texts), (lang, right)


@pytest.fixture()
def lingua_calls(monkeypatch):
    """The texts detect_language hands to lingua (the path every language but clear Vietnamese takes)."""
    import rag.language as language

    calls: list[str] = []
    original = language.lingua_language

    def recording(sample: str) -> str:
        calls.append(sample)
        return original(sample)

    monkeypatch.setattr(language, "lingua_language", recording)
    detect_language.cache_clear()
    yield calls
    detect_language.cache_clear()


@pytest.mark.parametrize(
    "question",
    [
        "Ai là người ký thỏa thuận hợp tác hữu nghị với Seongnam thay mặt tỉnh Thanh Hóa?",
        "Tỷ lệ che phủ rừng của tỉnh Bắc Kạn là bao nhiêu?",
        "Ai thua đội Broncos ở vòng bảng?",
    ],
)
def test_vietnamese_written_with_its_own_letters_is_decided_without_lingua(question, lingua_calls):
    """Most of these made lingua load every Latin-script model (1.5 s of a cold process); its answer is the same."""
    import rag.language as language

    assert detect_language(question) == "vi"
    assert lingua_calls == []
    assert language._detector().detect_language_of(question).iso_code_639_1.name.lower() == "vi"


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Who is the mayor of Seongnam?", "en"),  # short English
        ("The chairman, Đỗ Minh Tuấn, signed the agreement with the mayor of Seongnam.", "en"),  # a Vietnamese name
        ("Jared Allen có bao nhiêu lần vật ngã trong sự nghiệp?", "vi"),  # too few Vietnamese-only letters to decide
        ("Kapan Hai Phong menandatangani perjanjian kerja sama dengan Incheon?", "id"),
        ("Pihak Yamanashi sangat menghargai kadar pertumbuhan perindustrian Thanh Hoa.", "id"),  # short Malay
    ],
)
def test_everything_else_goes_through_lingua(text, lang, lingua_calls):
    assert detect_language(text) == lang
    assert lingua_calls == [text]


def test_unaccented_vietnamese_is_left_to_its_own_test(lingua_calls):
    """Typed without diacritics it has no Vietnamese-only letter: the syllable test decides it, as before."""
    typed = "Thanh Hoa va Seongnam hop tac trong nhung linh vuc nao?"
    assert not written_in_vietnamese(typed) and unaccented_vietnamese(typed)
    assert detect_language(typed) == "vi" and lingua_calls == []
