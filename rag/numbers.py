"""Numbers as values, across vi/id/ms/en writing.

Vietnamese, Indonesian and Malay write ``1.500`` and ``2,5`` where English
writes ``1,500`` and ``2.5``, and each language has its own scale words
(``triệu``, ``juta``, ``million``): an answer and the passage it comes from
agree on the value, not on the spelling.  So a number becomes its value:
``"2,5 triệu"``, ``"2.5 million"`` and ``"2,5 juta"`` all give ``"2500000"``.

Which separator is the decimal one is read from the digits, not the
language: a separator followed by exactly three digits groups thousands
(``1.500`` / ``1,500``), any other is a decimal point (``2,5`` / ``2.5``), and
when both appear the last one is the decimal point (``1.234,5`` / ``1,234.5``).
A plain number such as a year (``2023``) stays as written.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# Scale words, folded to lower case as written (diacritics kept: "tỷ" and "ty" differ in Vietnamese).
SCALES = {
    # Vietnamese
    "nghìn": 10**3, "ngàn": 10**3, "triệu": 10**6, "tỷ": 10**9, "tỉ": 10**9,
    # Indonesian and Malay
    "ribu": 10**3, "rb": 10**3, "juta": 10**6, "jt": 10**6, "miliar": 10**9, "milyar": 10**9, "bilion": 10**9,
    "triliun": 10**12, "trilion": 10**12,
    # English
    "thousand": 10**3, "million": 10**6, "millions": 10**6, "mn": 10**6, "billion": 10**9, "billions": 10**9,
    "bn": 10**9, "trillion": 10**12, "tn": 10**12,
}
PERCENT_WORDS = ("%", "persen", "peratus", "phần trăm", "percent", "per cent")

_SCALE = "|".join(sorted(map(re.escape, SCALES), key=len, reverse=True))
_PERCENT = "|".join(sorted(map(re.escape, PERCENT_WORDS), key=len, reverse=True))
_NUMBER = re.compile(
    r"(?<![\d.,])(?P<digits>\d+(?:[.,]\d+)*)"
    rf"(?:\s?(?P<percent>{_PERCENT})(?!\w)|(?P<scales>(?:\s?(?:{_SCALE})(?!\w))+))?",
    re.IGNORECASE,
)
_SCALE_WORD = re.compile(_SCALE, re.IGNORECASE)


def _value(digits: str) -> Decimal | None:
    """The value of ``digits`` as written with ``.``/``,`` separators (see the module docstring)."""
    separators = [ch for ch in digits if ch in ".,"]
    if not separators:
        return Decimal(digits)
    groups = re.split(r"[.,]", digits)
    if len(set(separators)) == 2:
        decimal_mark = separators[-1]
        if separators.count(decimal_mark) > 1:
            return None
        whole, _, fraction = digits.rpartition(decimal_mark)
        return Decimal(re.sub(r"[.,]", "", whole) + "." + fraction)
    if all(len(group) == 3 for group in groups[1:]) and len(groups[0]) <= 3:
        return Decimal("".join(groups))
    if len(groups) == 2:
        return Decimal(f"{groups[0]}.{groups[1]}")
    return None  # "1.2.3": a version or a date, not a value


def _format(value: Decimal) -> str:
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def numbers_in(text: str) -> frozenset[str]:
    """The values of the numbers in ``text``: ``"1500"``, ``"2500000"``, percentages as ``"15%"``."""
    return frozenset(value for value, _, _ in number_spans(text))


def number_spans(text: str) -> list[tuple[str, int, int]]:
    """Each number of ``text`` as its value (see :func:`numbers_in`) and the span it is written in, scale word included."""
    spans = []
    for match in _NUMBER.finditer(text):
        try:
            value = _value(match.group("digits"))
        except InvalidOperation:
            continue
        if value is None:
            continue
        if match.group("percent"):
            spans.append((_format(value) + "%", match.start(), match.end()))
            continue
        for scale in _SCALE_WORD.findall(match.group("scales") or ""):
            value *= SCALES[scale.lower()]
        spans.append((_format(value), match.start(), match.end()))
    return spans
