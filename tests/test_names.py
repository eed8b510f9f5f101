"""Names normalised across languages: one key for every spelling of a place, country or person."""

import pytest

from rag.names import (
    NameMention,
    about_another_place,
    country_of,
    find_names,
    gazetteer_keys,
    name_keys,
    sentences_elsewhere,
)

SAME_ENTITY = [
    ("loc:vn:ha-noi", ["Hà Nội", "Hanoi", "Ha Noi", "Thành phố Hà Nội", "Kota Hanoi"]),
    ("loc:vn:ho-chi-minh", ["TP HCM", "TPHCM", "TP.HCM", "Kota Ho Chi Minh", "Thành phố Hồ Chí Minh",
                            "Ho Chi Minh City", "HCMC", "Sài Gòn", "Saigon"]),
    ("country:kr", ["Hàn Quốc", "Korea Selatan", "South Korea", "Korea"]),
    ("country:jp", ["Nhật Bản", "Jepang", "Jepun", "Japan"]),
    ("country:cn", ["Trung Quốc", "Tiongkok", "China"]),
    ("country:us", ["Hoa Kỳ", "Mỹ", "Amerika Serikat", "Amerika Syarikat", "AS", "USA", "United States"]),
    ("loc:vn:thanh-hoa", ["Thanh Hóa", "Thanh Hoa", "tỉnh Thanh Hóa", "Provinsi Thanh Hoa", "Thanh Hoa Province"]),
    ("loc:vn:da-nang", ["Đà Nẵng", "Da Nang", "Danang"]),
    ("region:150", ["châu Âu", "Châu Âu", "Eropa", "Eropah", "Europe"]),
    ("region:eu", ["Liên minh châu Âu", "Uni Eropa", "Kesatuan Eropah", "European Union", "EU"]),
    ("region:035", ["Đông Nam Á", "Asia Tenggara", "Southeast Asia"]),
    ("region:419", ["Mỹ Latinh", "Châu Mỹ La-tinh", "Amerika Latin", "Latin America"]),
]


@pytest.mark.parametrize(("key", "spellings"), SAME_ENTITY)
def test_every_spelling_of_an_entity_gives_its_key(key, spellings):
    for spelling in spellings:
        assert gazetteer_keys(f"Berita dari {spelling} hari ini.") == {key}, spelling


def test_ordinary_words_that_look_like_names_are_not_names():
    assert gazetteer_keys("as my friend said, it is my view") == frozenset()
    assert gazetteer_keys("Menurut BI, inflasi turun.") == frozenset()  # Bank Indonesia, not Bỉ (Belgium)
    assert gazetteer_keys("Tôi gặp ông Đức và bà Nga ở Hà Nội.") == {"loc:vn:ha-noi"}  # people, not Germany/Russia
    assert "country:us" in gazetteer_keys("Tổng thống Mỹ Donald Trump phát biểu.")


@pytest.mark.parametrize("continent", ["South America", "Amerika Selatan", "Nam Mỹ", "North America", "Bắc Mỹ",
                                       "Latin America", "Mỹ Latinh", "châu Mỹ"])
def test_a_continent_is_not_the_country_its_name_contains(continent):
    """CLDR's regions are loaded: the longest spelling found in "South America" was the United States'."""
    keys = gazetteer_keys(f"Berita dari {continent} hari ini.")
    assert len(keys) == 1 and next(iter(keys)).startswith("region:"), keys
    assert gazetteer_keys("Berita dari Amerika hari ini.") == {"country:us"}  # what Indonesian news calls the US


def test_vietnamese_accents_tell_places_from_words():
    assert gazetteer_keys("Tổng Bí thư thăm Bỉ.") == {"country:be"}
    assert gazetteer_keys("Đội Nhất bảng gặp Nhật Bản và Nhật.") == {"country:jp"}
    assert gazetteer_keys("tỉnh Thanh Hoá và Hoà Bình") == {"loc:vn:thanh-hoa", "loc:vn:hoa-binh"}  # either tone placement
    assert gazetteer_keys("Khu vực Châu Á - Thái Bình Dương và tỉnh Thái Bình.") == {"region:142", "loc:vn:thai-binh"}


def test_mentions_carry_offsets_into_the_text_given():
    text = "Di pihak Kota Seongnam, ada Bapak Shin Sang Jin, Wali Kota kota; Bapak An Kwang Lim, Wakil Ketua Dewan Kota."
    mentions = find_names(text)
    assert all(text[m.start:m.end] == m.surface for m in mentions)
    assert NameMention("loc:kr:seongnam", "Kota Seongnam", 9, 22, "locality") in mentions
    assert NameMention("name:shin sang jin", "Shin Sang Jin", 34, 47, "name") in mentions
    assert "name:an kwang lim" in {m.key for m in mentions}


def test_offsets_hold_for_decomposed_text():
    import unicodedata

    text = unicodedata.normalize("NFD", "Lãnh đạo TP Hồ Chí Minh tiếp đoàn Daejeon.")
    mentions = find_names(text)
    assert {m.key for m in mentions} == {"loc:vn:ho-chi-minh", "loc:kr:daejeon"}
    assert all(text[m.start:m.end] == m.surface for m in mentions)


def test_mentions_do_not_overlap_and_the_longest_spelling_wins():
    mentions = find_names("Quan hệ Việt Nam - Hàn Quốc và Triều Tiên; hubungan Korea Utara dan Korea Selatan.")
    assert [m.key for m in mentions] == ["country:vn", "country:kr", "country:kp", "country:kp", "country:kr"]
    spans = sorted((m.start, m.end) for m in mentions)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:]))


def test_legacy_province_keeps_its_own_key_and_current_province_has_one():
    # Bắc Kạn merged into Thái Nguyên in 2025: an article about Bắc Kạn is still about Bắc Kạn.
    assert gazetteer_keys("Cadangan timbal di Bắc Kạn terbesar.") == {"loc:vn:bac-kan"}
    assert gazetteer_keys("Cadangan timbal di Bac Kan terbesar.") == {"loc:vn:bac-kan"}
    assert gazetteer_keys("Tỉnh Thái Nguyên mới.") == {"loc:vn:thai-nguyen"}
    # renamed, not merged: Thừa Thiên Huế is today's city of Huế
    assert gazetteer_keys("Thua Thien Hue dan Thành phố Huế.") == {"loc:vn:hue"}


@pytest.mark.parametrize("text", [
    "Tỉnh Thanh Hóa và tỉnh Yamanashi ký kết hợp tác.",
    "Provinsi Thanh Hoa dan Prefektur Yamanashi menandatangani kerja sama.",
    "Wilayah Thanh Hoa dan wilayah Yamanashi menandatangani kerjasama.",
    "Thanh Hoa Province and Yamanashi Prefecture signed an agreement.",
])
def test_a_japanese_prefecture_in_every_language(text):
    assert gazetteer_keys(text) == {"loc:vn:thanh-hoa", "loc:jp:yamanashi"}


@pytest.mark.parametrize("text", [
    "Lãnh đạo TP HCM tiếp đoàn công tác TP Daejeon - Hàn Quốc.",
    "Pemimpin Kota Ho Chi Minh menerima delegasi Kota Daejeon, Korea Selatan.",
    "Pemimpin Bandar Raya Ho Chi Minh menerima delegasi Bandar Daejeon, Korea Selatan.",
    "Ho Chi Minh City leaders received a delegation from Daejeon, South Korea.",
])
def test_a_korean_city_in_every_language(text):
    assert gazetteer_keys(text) == {"loc:vn:ho-chi-minh", "loc:kr:daejeon", "country:kr"}


def test_people_share_a_key_across_languages_without_their_titles():
    indonesian = name_keys("Menanggapi hal tersebut, Bapak Shin Sang Jin, Wali Kota Seongnam, mengatakan.")
    english = name_keys("What did Mayor Shin Sang-jin of Seongnam say?")
    assert {"name:shin sang jin", "loc:kr:seongnam"} <= indonesian & english
    assert not any(key.startswith("name:") and ("wali" in key or "mayor" in key) for key in indonesian | english)


def test_vietnamese_titles_and_calendar_words_are_not_names():
    keys = name_keys("Hôm nay, Chủ tịch nước gặp Thủ tướng tại Hà Nội vào Thứ Hai. Pada hari Selasa, Rp 5 juta.")
    assert not any(key.startswith("name:") for key in keys), keys


def test_a_name_ends_at_a_line_break():
    keys = name_keys("Berita hari ini tentang Ringkasan Bulanan\nBerikut Prabowo Subianto berkata berikut ini.")
    assert {"name:ringkasan bulanan", "name:prabowo subianto"} <= keys  # the sentence's first word dropped too
    assert not any("berikut" in key for key in keys)


def test_gazetteer_keys_leave_out_other_names():
    text = "Menanggapi hal tersebut, Bapak Shin Sang Jin, Wali Kota Seongnam, mengatakan."
    assert gazetteer_keys(text) == {"loc:kr:seongnam"}
    assert gazetteer_keys(text) < name_keys(text)


def test_every_spelling_of_the_partner_localities_file_gives_its_own_key():
    import tomllib
    from importlib import resources

    table = tomllib.loads(resources.files("rag").joinpath("data/partner_localities.toml").read_text("utf-8"))
    wrong = {
        spelling: keys
        for country, places in table.items()
        for slug, spellings in places.items()
        for spelling in spellings
        if (keys := gazetteer_keys(f"Berita dari {spelling} hari ini.")) != {f"loc:{country}:{slug}"}
    }
    assert not wrong


def test_every_vietnamese_province_old_and_new_is_found_with_and_without_accents():
    import pycountry
    from vietnam_provinces import Province

    from rag.language import fold

    names = [p.name for p in Province.iter_all()] + [s.name for s in pycountry.subdivisions.get(country_code="VN")]
    assert len(names) == 34 + 63
    for name in names:
        accented = gazetteer_keys(f"Berita dari {name} hari ini.")
        plain = gazetteer_keys(f"Berita dari {fold(name).title()} hari ini.")
        assert len(accented) == 1 and next(iter(accented)).startswith("loc:vn:") and plain == accented, name


@pytest.mark.parametrize(("question", "keys"), [
    # chat is often typed all in lower case, Vietnamese often without its diacritics as well
    ("tphcm dang hop tac voi nhung dia phuong nao trong nuoc va nuoc ngoai?", {"loc:vn:ho-chi-minh"}),
    ("tp hcm va ha noi hop tac voi han quoc nhu the nao?", {"loc:vn:ho-chi-minh", "loc:vn:ha-noi", "country:kr"}),
    ("kapan kota ho chi minh bekerja sama dengan korea selatan?", {"loc:vn:ho-chi-minh", "country:kr"}),
    ("who is the mayor of seongnam?", {"loc:kr:seongnam"}),
    ("what did yamanashi agree to with thanh hoa?", {"loc:jp:yamanashi", "loc:vn:thanh-hoa"}),
])
def test_names_typed_in_lower_case_are_found_in_a_text_without_capitals(question, keys):
    assert gazetteer_keys(question) == keys


def test_lower_case_words_that_are_also_names_stay_words():
    # one Vietnamese syllable ("nhat", "duc", "my") or a short acronym ("as", "us") is a word as often as a name
    assert gazetteer_keys("anh ay la nguoi duc tot nhat o my, as we say to us") == frozenset()
    # and capitals anywhere mean the text writes its names with them: the usual rules apply
    assert gazetteer_keys("Ông ấy nói ha noi") == frozenset()


def test_a_place_lies_in_its_country():
    assert country_of("loc:kr:seongnam") == "country:kr"
    assert country_of("country:jp") == "country:jp"
    assert country_of("name:shin sang jin") is None


@pytest.mark.parametrize(("question", "text", "elsewhere"), [
    ("Vietnam and South Korea upgraded their ties in which year?", "Jepun-Vietnam kepada Perkongsian Strategik", True),
    ("Vietnam and South Korea upgraded their ties in which year?", "hubungan Vietnam-Korea semakin berkembang", False),
    # a place inside an asked country covers it; the country of an asked place is no other place
    ("Vietnam and South Korea upgraded their ties in which year?", "Thanh Hoa dan Seongnam menandatangani", False),
    ("Ai đứng đầu Ban Quản lý các khu công nghệ cao Hà Nội?", "Bapak Vu Xuan Hung, Kota Hanoi, Vietnam", False),
    ("Ai đứng đầu Ban Quản lý các khu công nghệ cao Hà Nội?", "Daejeon là nơi tập trung nhiều viện nghiên cứu", True),
    ("Who is the mayor of Daejeon?", "Wali Kota Seongnam, Shin Sang Jin", True),
    # naming nothing is not speaking of somewhere else: the sentence that answers often says "he"
    ("Who is the mayor of Daejeon?", "Beliau juga menyampaikan terima kasih", False),
    # naming the asked place and others besides is still about it
    ("Who is the mayor of Daejeon?", "Daejeon dan Seongnam", False),
    # a region may hold the asked country (which countries it holds is not known): no other place, either way
    ("Pháp xuất khẩu gì nhiều nhất?", "Xuất khẩu của châu Âu tăng mạnh", False),
    ("Apa yang diekspor Uni Eropa ke Vietnam?", "Perancis mengekspor anggur ke Vietnam", False),
    ("When did the Mongols reach Europe?", "They crossed into Poland and Hungary", False),
])
def test_a_text_speaks_of_another_place_when_it_drops_an_asked_one_for_another(question, text, elsewhere):
    assert about_another_place(gazetteer_keys(question), gazetteer_keys(text)) is elsewhere


@pytest.mark.parametrize(("text", "elsewhere"), [
    ("TH và ITEC ký biên bản ghi nhớ tại Tokyo, Hà Nội chứng kiến", False),  # one part of the question, its places
    ("Siemens mở nhà máy tua-bin khí tại Đức", False),
    ("Thủ tướng thăm Hàn Quốc và Singapore", True),  # none of the question's places, others instead
])
def test_asked_by_part_a_text_leaves_the_question_only_when_it_names_none_of_its_places(text, elsewhere):
    question = "Whose plant did he visit in Germany, and which Japanese group signed an MOU in Tokyo?"
    asked = gazetteer_keys(question)
    assert about_another_place(asked, gazetteer_keys(text), by_part=True) is elsewhere
    assert about_another_place(asked, gazetteer_keys(text)) is (gazetteer_keys(text) != gazetteer_keys("Đức"))


def test_sentences_of_an_answer_spread_over_articles_are_read_by_part():
    """No passage names both Germany and Japan: each answers one part, so the Tokyo sentence stays."""
    question = "Whose plant did he visit in Germany, and which Japanese group signed an MOU in Tokyo?"
    sentences = ["TH và ITEC ký biên bản ghi nhớ tại Tokyo, Hà Nội chứng kiến.", "Siemens ở Đức."]
    assert sentences_elsewhere(question, sentences) == [True, False]  # read whole, the Tokyo sentence left Germany out
    assert sentences_elsewhere(question, sentences, ["Chuyến thăm Nhật Bản: " + sentences[0], sentences[1]]) == [
        False, False]
    both = "Thủ tướng thăm Đức, rồi Tokyo."
    assert sentences_elsewhere(question, sentences, [both, sentences[1]]) == [True, False]  # one passage names both


def test_sentences_all_about_other_places_are_all_kept():
    """Then the passages may not answer at all: the similarity floors say so, not this check."""
    assert sentences_elsewhere("Who is the mayor of Daejeon?", ["Seongnam lies near Seoul.", "Busan is a port."]) == [
        False, False]
    assert sentences_elsewhere("Who leads the party?", ["Seongnam lies near Seoul."]) == [False]  # no place asked
