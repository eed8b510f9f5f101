"""Answer types: what a question asks for, and whether a sentence contains it, in the corpus languages."""

import pytest

from rag.answer_types import (AREA, DATE, DAY, MONEY, NUMBER, PLACE, POPULATION, ROLES, expected_type, has_type,
                              place_asked)
from rag.answers import role_name


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("How much money will Sumitomo invest in the industrial park?", MONEY),
        ("Tong von dau tu cua Han Quoc vao Thanh Hoa la bao nhieu?", MONEY),
        ("Berapa anggaran proyek transformasi digital?", MONEY),
        ("When did Hai Phong sign with Incheon?", DATE),
        ("Since what year have Thanh Hoa and Seongnam cooperated?", DATE),
        ("Diễn đàn diễn ra vào ngày nào?", DAY),
        ("On what date was the charter signed?", DAY),
        ("Pada tanggal berapakah VOC dinyatakan pailit?", DAY),
        ("Diễn đàn diễn ra vào năm nào?", DATE),
        ("Kapan pembangunan dijadwalkan dimulai?", DATE),
        ("Kapankah kontrak Grup Radja dengan Malta berakhir?", DATE),  # the particle -kah
        ("Berapakah rata-rata tingkat erosi DAS Merawu?", NUMBER),
        ("Tahun berapa hubungan ditingkatkan?", DATE),
        ("What is the population of Seongnam?", POPULATION),
        ("Dân số tỉnh Yamanashi là bao nhiêu?", POPULATION),
        ("Berapa luas Taman Teknologi Tinggi Hoa Lac?", AREA),
        ("How many Korean businesses took part?", NUMBER),
        ("Có bao nhiêu công dân Hàn Quốc đang sinh sống tại TP HCM?", NUMBER),
        ("Berapa proyek dari investor Kota Ho Chi Minh?", NUMBER),
        ("Who is the mayor of Seongnam?", "mayor"),
        ("Thị trưởng Seongnam là ai?", "mayor"),
        ("Siapakah Gubernur Papua?", "governor"),
        ("Who signed the agreement with Seongnam?", None),
        ("What did the mayor of Seongnam say?", None),  # only "who" questions must name the role
        ("Which mountain did he praise when talking about Yamanashi?", None),
        ("Lễ ký kết diễn ra lúc nào?", DATE),
        ("le ky ket dien ra luc nao?", DATE),  # typed without accents
        ("Chính quyền Hốt Tất Liệt có sự phân chia quyền lực nào?", None),  # "lực nào": which power, not when
        # a person who spoke about the world's population, not a population
        ("Siapakah ahli fisika yang memaparkan kesenjangan pendapatan antara penduduk dunia?", None),
        ("Berapa jumlah penduduk Provinsi Jiangsu saat ini?", POPULATION),
        ("How often do Parliament elections take place?", NUMBER),  # "every five years"
        ("During which years was the plague present in Islamic countries?", DATE),  # "from 1500 to 1850"
    ],
)
def test_expected_type(question, kind):
    assert expected_type(question) == kind


@pytest.mark.parametrize(
    ("sentence", "kind", "expected"),
    [
        ("Nghe An menarik tiga proyek dengan total modal hampir 615 miliar VND.", MONEY, True),
        ("The group will invest $200 million.", MONEY, True),
        ("Dự án có tổng vốn 1.500 tỷ đồng.", MONEY, True),
        ("Công ty Sumitomo sẽ khởi công vào năm 2026.", MONEY, False),  # "công ty" is a company, not a sum
        ("Cộng đồng 80.000 người Hàn Quốc sinh sống tại TP HCM.", MONEY, False),  # "cộng đồng": a community
        ("Pembangunan dijadwalkan dimulai pada awal 2026.", DATE, True),
        ("Lễ ký kết diễn ra ngày 25/11.", DATE, True),
        ("Upacara diadakan pada 10 Maret.", DATE, True),
        ("Seongnam adalah kota terkemuka di Korea.", DATE, False),
        ("Lễ ký kết diễn ra ngày 25/11.", DAY, True),
        ("Pada pagi 25 November, di Quang Ninh.", DAY, True),
        ("Chiều 10-3, ông Nguyễn Văn Thọ chủ trì buổi tiếp.", DAY, True),
        ("Arah pengembangan Ibu Kota Hanoi hingga 2030.", DAY, False),  # a year, not a day
        ("Di pihak Kota Seongnam, ada Bapak Shin Sang Jin, Wali Kota kota.", "mayor", True),
        ("Phó Chủ tịch Hội đồng TP Daejeon Hwang Kyoung Ah.", "mayor", False),
        ("Naib Pengerusi Cao Van Cuong mencadangkan kerjasama dengan wilayah Yamanashi.", "governor", False),
        ("Seongnam có dân số khoảng 920.000 người.", POPULATION, True),
        ("Seongnam có 14 doanh nghiệp tham gia đoàn.", POPULATION, False),
        ("Khu công nghệ cao rộng 1.586 ha.", AREA, True),
        ("Hà Nội có hơn 840 dự án.", AREA, False),  # "Hà" is not hectares
        ("Luas daratan Papua 410.660 kilometer persegi.", AREA, True),
        ("Diện tích tỉnh là 11.114 km vuông.", AREA, True),
        ("Nghe An menarik tiga proyek.", NUMBER, True),
        ("Delegasi ini dipimpin oleh Wali Kota.", NUMBER, False),
        ("Any sentence at all.", None, True),
        ("Universitas pertama di dunia didirikan pada tahun 971 di Kairo, Mesir.", DATE, True),  # a year named so
        ("Sekolah itu memiliki 971 murid.", DATE, False),
        ("Dinasti Saljuq dengan Sultan Ali Mughayat (1514-1530) sebagai sultan pertama.", DATE, True),  # a reign
        ("Chỉ có 100-150 loài đã được xác nhận.", DATE, False),  # a range of counts, not of years
        ("Topan Khanun melintasi Provinsi Jiangsu yang berpenduduk 74 juta jiwa.", POPULATION, True),
    ],
)
def test_has_type(sentence, kind, expected):
    assert has_type(sentence, kind) is expected


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("Kupang, Kompas - Anak-anak korban diare pada 2005 masih terus berjatuhan.", False),  # only the question's year
        ("Hingga Jumat (12/8), penyakit ini telah menewaskan 13 orang.", True),
    ],
)
def test_numbers_the_question_gives_are_no_answer(sentence, expected):
    question = "Hingga Jumat 12 Agustus 2005, berapakah korban diare di Nusa Tenggara Timur yang tewas?"
    assert has_type(sentence, expected_type(question), question) is expected


@pytest.mark.parametrize(
    ("question", "prefix"),
    [
        ("Which Japanese prefecture did Thanh Hoa meet at the forum?", "loc:jp:"),
        ("Which prefectures sent delegations?", "loc:jp:"),
        ("Which province is a partner of a Korean city?", "loc:vn:"),  # the qualifier must stand beside the noun
        ("Tỉnh nào của Nhật Bản đã ký với Thanh Hóa?", "loc:jp:"),
        ("Thành phố nào của Hàn Quốc có nhiều viện nghiên cứu?", "loc:kr:"),
        ("Prefektur Jepang mana yang bertemu dengan Thanh Hoa?", "loc:jp:"),
        ("Negara mana yang menjadi mitra?", "country:"),
        ("Kota mana yang menandatangani perjanjian?", "loc:"),
        ("What is the city famous for?", ""),
        ("Vệ tinh nào cho phép triển khai dịch vụ?", ""),  # a satellite (vệ tinh), not a province (tỉnh)
    ],
)
def test_the_place_a_which_question_asks_for(question, prefix):
    assert place_asked(question) == prefix
    assert expected_type(question) == (PLACE if prefix else None)


def test_a_place_answer_names_a_place_of_the_kind_asked_that_the_question_does_not():
    question = "Which Japanese prefecture did Thanh Hoa meet at the forum?"
    assert has_type("Thanh Hoa held talks with Yamanashi prefecture.", PLACE, question)
    assert not has_type("Thanh Hoa held talks in Quang Ninh with Japan.", PLACE, question)  # a Vietnamese province
    assert not has_type("Thanh Hóa attended the forum.", PLACE, question)  # only the place already asked about


@pytest.mark.parametrize("role", sorted(ROLES))
def test_every_office_has_a_name_in_every_language_the_notes_use(role):
    names = {lang: role_name(role, lang) for lang in ("en", "vi", "id", "ms")}
    assert names["en"] == role
    assert all(names[lang] != role for lang in ("vi", "id")), names  # not the English key in a Vietnamese note
