"""Metadata filters on a search: which articles a question may be answered from.

One record crosses every layer (CLI flags, API requests, the UI's controls, the
retriever and each store backend), so that a filter means the same thing
wherever it is given.  Empty fields do not filter.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .errors import UserError


class FilterError(UserError):
    """A filter value cannot be used (a malformed date, an empty range)."""


@dataclass(frozen=True)
class SearchFilters:
    """Restrict a search to articles in these languages, dates, sources and ids.

    ``since`` and ``until`` are inclusive ISO dates (``YYYY-MM-DD``); an article
    without a date is excluded as soon as either bound is set, because nothing
    says it is in the range.  ``sources`` are site names (``kompas.com``)
    matched against the article's source, case-insensitively.
    """

    languages: tuple[str, ...] = ()
    since: dt.date | None = None
    until: dt.date | None = None
    sources: tuple[str, ...] = ()
    article_ids: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.since and self.until and self.since > self.until:
            raise FilterError(f"the date range is empty: since {self.since} is after until {self.until}")

    @classmethod
    def of(cls, *, languages: Iterable[str] | str | None = None, since: str | dt.date | None = None,
           until: str | dt.date | None = None, sources: Iterable[str] | str | None = None,
           article_ids: Iterable[str] | str | None = None) -> SearchFilters:
        """Build filters from loose user input: comma-separated strings or lists, ISO date strings."""
        return cls(
            languages=tuple(v.lower() for v in _values(languages)),
            since=_date(since, "since"),
            until=_date(until, "until"),
            sources=tuple(v.lower() for v in _values(sources)),
            article_ids=tuple(_values(article_ids)),
        )

    def __bool__(self) -> bool:
        return bool(self.languages or self.since or self.until or self.sources or self.article_ids)

    def admits(self, *, lang: str, date: str | None, source: str | None, doc_id: str) -> bool:
        """Whether one article passes: the reference semantics every backend must match."""
        if self.languages and lang not in self.languages:
            return False
        if self.article_ids and doc_id not in self.article_ids:
            return False
        if self.sources and (source or "").lower() not in self.sources:
            return False
        if self.since or self.until:
            day = article_day(date)
            if day is None or (self.since and day < self.since) or (self.until and day > self.until):
                return False
        return True


def _values(value: Iterable[str] | str | None) -> list[str]:
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [item.strip() for item in items if item and item.strip()]


def _date(value: str | dt.date | None, name: str) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    value = value.strip()
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise FilterError(f"{name} must be a date as YYYY-MM-DD, not {value!r}") from None


def article_day(date: str | None) -> dt.date | None:
    """The day of an article's date field (which may carry a time after the day)."""
    if not date:
        return None
    try:
        return dt.date.fromisoformat(date[:10])
    except ValueError:
        return None


def filter_sql(filters: SearchFilters, mark: Callable[[str], str]) -> tuple[str, dict[str, str]]:
    """The SQL condition of :meth:`SearchFilters.admits` on an article table aliased ``a``, and its parameters.

    The table holds ``lang``, ``doc_id``, ``source`` and ``day`` (the ISO day of :func:`article_day`, or NULL),
    as both backends store them; ``mark`` writes a named parameter in the driver's style (``:x``, ``%(x)s``).
    """
    clauses: list[str] = []
    params: dict[str, str] = {}

    def listed(prefix: str, values: tuple[str, ...]) -> str:
        params.update({f"{prefix}{i}": value for i, value in enumerate(values)})
        return ",".join(mark(f"{prefix}{i}") for i in range(len(values)))

    if filters.languages:
        clauses.append(f"a.lang IN ({listed('filter_lang', filters.languages)})")
    if filters.article_ids:
        clauses.append(f"a.doc_id IN ({listed('filter_id', filters.article_ids)})")
    if filters.sources:
        clauses.append(f"lower(a.source) IN ({listed('filter_source', filters.sources)})")
    for name, day, operator in (("filter_since", filters.since, ">="), ("filter_until", filters.until, "<=")):
        if day:
            params[name] = day.isoformat()
            clauses.append(f"a.day {operator} {mark(name)}")
    return " AND ".join(clauses) or "1 = 1", params
