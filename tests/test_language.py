"""Names across languages: which words of a question are names, and whether a corpus mentions them."""

from rag.language import NameVocabulary, name_phrases, name_tokens

CORPUS = [
    "Tỉnh Thanh Hóa và tỉnh Yamanashi ký kết hợp tác. Ông Nguyễn Quang Hải phát biểu.",
    "Cadangan timbal di Bắc Kạn terbesar. Kota Ho Chi Minh bekerja sama dengan Hanoi.",
]


def test_name_phrases_skip_the_first_word_and_lowercase_words():
    assert name_phrases("Kapan Hai Phong menandatangani perjanjian dengan Incheon?") == ["Hai Phong", "Incheon"]
    # Vietnamese lower-case letters with diacritics are not capitals
    assert name_phrases("Thành phố Hồ Chí Minh ký kết với tỉnh Yamanashi khi nào?") == ["Hồ Chí Minh", "Yamanashi"]


def test_name_phrases_drop_possessives_and_keep_numbers():
    assert name_phrases("How big are Bac Kan's lead reserves?") == ["Bac Kan"]
    assert name_tokens("Who signed in 2023 with TP HCM?") == {"2023", "hochiminh"}


def test_vocabulary_knows_whole_phrases_across_spellings():
    names = NameVocabulary(CORPUS)
    assert names.knows("Thanh Hoa")  # diacritics folded
    assert names.knows("Bac Kan")
    assert names.knows("TPHCM")  # alias of Ho Chi Minh
    assert not names.knows("Hai Phong")  # "Hải" is only part of a person's name here
    assert not names.knows("Incheon")


def test_vocabulary_knows_a_translated_phrase_through_a_longer_name_word():
    names = NameVocabulary(CORPUS)
    assert names.knows("Hanoi Union")  # the articles name the union in other languages
    assert not names.knows("Hai Union")  # "Hải" is a name word here, but too short to vouch for a phrase


def test_unknown_share():
    names = NameVocabulary(CORPUS)
    assert names.unknown_share("Kapan Hai Phong menandatangani perjanjian dengan Incheon?") == 1.0
    assert names.unknown_share("What did Thanh Hoa sign with Busan?") == 0.5
    assert names.unknown_share("what did they sign?") == 0.0
