"""The request bodies of the API, validated by pydantic (a bad body is a 422 naming the field)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..filters import SearchFilters

MAX_QUESTION = 4000  # characters: a question, not a document


class Filters(BaseModel):
    """Which articles may answer: the fields of :class:`rag.filters.SearchFilters`, lists or comma-separated."""

    model_config = ConfigDict(extra="forbid")

    languages: list[str] | str | None = Field(None, examples=[["vi", "id"]])
    since: str | None = Field(None, description="inclusive ISO date", examples=["2025-01-01"])
    until: str | None = Field(None, description="inclusive ISO date")
    sources: list[str] | str | None = Field(None, description="site names", examples=[["kompas.com"]])
    article_ids: list[str] | str | None = None

    def parsed(self) -> SearchFilters:
        return SearchFilters.of(**self.model_dump())


def filters_of(filters: Filters | None) -> SearchFilters | None:
    return filters.parsed() if filters else None


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=MAX_QUESTION)
    k: int | None = Field(None, ge=1, le=100, description="how many passages (default: the top_k setting)")
    filters: Filters | None = None


class ArticleIn(BaseModel):
    """An article given as JSON; ``lang`` is detected and ``title`` taken from the text when not given."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field("", max_length=500)
    text: str = Field(min_length=1)
    url: str | None = None
    date: str | None = Field(None, description="ISO date, YYYY-MM-DD")
    lang: str | None = Field(None, description="ISO 639-1 code: vi, id, ms, en…")


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")  # name, tool_calls…: accepted, not used

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(part.text or "" for part in self.content if part.type == "text")
        return self.content or ""


class ChatRequest(BaseModel):
    """OpenAI's chat request; sampling options are accepted and ignored, ``filters`` is this server's extension."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    filters: Filters | None = Field(None, description="extension: restrict the articles the answer may use")
