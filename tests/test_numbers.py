"""Numbers as values across vi/id/ms/en writing, on sentences of the seed corpus."""

import pytest

from rag.numbers import numbers_in


@pytest.mark.parametrize(("texts", "value"), [
    (["1.500", "1,500", "1500"], "1500"),
    (["2,5 triệu", "2.5 million", "2,5 juta", "2.5 juta", "2,5 Triệu"], "2500000"),
    (["1,2 tỷ", "1.2 billion", "1,2 miliar", "1.2 bilion", "RM1.2 bilion", "US$1.2bn"], "1200000000"),
    (["3 nghìn", "3 ngàn", "3 ribu", "3 thousand"], "3000"),
    (["2 nghìn tỷ đồng", "2 triliun", "2 trilion", "2 trillion"], "2000000000000"),
    (["15%", "15 %", "15 persen", "15 peratus", "15 phần trăm", "15 percent"], "15%"),
    (["1.234,5", "1,234.5"], "1234.5"),
])
def test_one_value_for_every_spelling(texts, value):
    for text in texts:
        assert numbers_in(f"tổng cộng {text} ok") == {value}, text


def test_real_sentences_of_the_seed_corpus():
    assert numbers_in("terutama cadangan timbal dan seng lebih dari 3,5 juta ton, terbesar di negara ini") == {"3500000"}
    assert numbers_in("tiga proyek dari investor kota dengan total modal hampir 615 miliar VND.") == {"615000000000"}
    assert numbers_in("telah menarik lebih dari 840 proyek investasi, termasuk sekitar 340 proyek") == {"840", "340"}
    assert numbers_in("pada tahun 2023, 26/33 konten koordinasi telah diimplementasikan") == {"2023", "26", "33"}


def test_years_stay_years_and_sentence_ends_are_not_decimals():
    assert numbers_in("pada bulan Maret 2023. Hingga tahun 2025.") == {"2023", "2025"}
    assert numbers_in("Resolusi No. 57-NQ/TW") == {"57"}


def test_a_separator_before_other_than_three_digits_is_a_decimal_point():
    assert numbers_in("tăng 2,75 lần") == {"2.75"}
    assert numbers_in("grew 2.75 times") == {"2.75"}
    assert numbers_in("version 1.2.3") == frozenset()
