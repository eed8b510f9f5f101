"""The one place for configuration.

Values come, highest priority first, from: explicit arguments (CLI flags),
environment variables (``RAG_*``, plus the usual ``OPENAI_BASE_URL`` /
``OPENAI_API_KEY``), a TOML file (``rag.toml`` in the working directory, or
the file named by ``RAG_CONFIG``), and the defaults below.  Everything else in
the package receives a :class:`Settings` instead of reading the environment.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from .errors import UserError

DEFAULT_CONFIG_FILE = "rag.toml"
DEFAULT_MODEL = "intfloat/multilingual-e5-small"
DATABASE_SCHEMES = ("postgresql://", "postgres://")  # an index setting starting so names a database, not a folder


class ConfigError(UserError):
    """Configuration cannot be used; the message says which file or variable and why."""


class Settings(BaseSettings):
    """All tunables of the assistant.  Field names double as TOML keys."""

    model_config = SettingsConfigDict(env_prefix="RAG_", extra="forbid", validate_default=True)

    # where things live
    corpus: Path = Field(Path("corpus"), description="Folder of articles or a JSONL file")
    index: Path | str = Field(
        Path("index"), description="Folder holding the built index, or a postgresql:// URL of a shared database"
    )

    # embedding and chunking (a change of any of these forces a full rebuild)
    model: str = Field(DEFAULT_MODEL, description="sentence-transformers model name or local path")
    model_cache: Path = Field(
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rag-news" / "models",
        description="Where offline model copies are materialised",
    )
    chunk_tokens: int = Field(220, ge=32, le=2048, description="Target chunk size in tiktoken tokens")
    chunk_overlap: int = Field(40, ge=0, le=512, description="Tokens shared by consecutive chunks")
    encoding: str = Field("o200k_base", description="tiktoken encoding used to count tokens")
    max_article_bytes: int = Field(5_000_000, ge=1, description="Larger files are refused")
    max_article_chunks: int = Field(
        400, ge=1, description="Passages indexed per article at most (~80k tokens); the rest is left out, with a warning")
    embed_batch_size: int = Field(32, ge=1, le=1024)
    ivf_threshold: int = Field(
        50_000, ge=10, description="Chunks from which the vector index is approximate (IVF) instead of exact"
    )

    # retrieval (defaults follow bench/README.md)
    top_k: int = Field(5, ge=1, le=100)
    lexical_weight: float = Field(
        0.1, ge=0, le=10, description="Weight of BM25 by the question's names and numbers in rank fusion; 0 = dense only"
    )
    lexical_words_weight: float = Field(
        0.07, ge=0, le=10, description="Weight of BM25 by all the question's words, over passages in its language"
    )
    candidates: int = Field(50, ge=1, le=1000, description="Candidates per ranking before fusion")
    language_candidates: int = Field(
        10, ge=0, le=1000, description="Dense candidates drawn from each passage language too; 0 = one pool"
    )
    language_margin: float = Field(
        0.07, ge=0, le=2, description="... only those within this cosine of the best candidate; 0 = no limit"
    )
    language_calibration: float = Field(
        0.75, ge=0, le=2, description="Share of each passage language's pull on every question taken off its score; 0 = off"
    )
    same_language_calibration: float = Field(
        0.75, ge=0, le=2, description="Share of the question's own language's pull taken off passages in that language; 0 = off"
    )
    same_language_unnamed_share: float = Field(
        0.5, ge=0, le=1,
        description="Share of that correction kept when the question names nothing the corpus knows; 1 = always all of it",
    )
    sentence_weight: float = Field(1.0, ge=0, le=10, description="Weight of a passage's best sentence in re-ranking; 0 = off")
    rerank_candidates: int = Field(30, ge=0, le=1000, description="Dense candidates re-ranked by their best sentence")
    rerank_sentences_alone: bool = Field(
        True, description="Re-ranking reads each sentence alone too and takes the closer reading; false = in context only"
    )
    name_weight: float = Field(
        0.05, ge=0, le=10, description="Bonus for the share of the question's names a passage's article names; 0 = off"
    )
    name_candidates: int = Field(
        10, ge=0, le=1000, description="Articles naming most of the question's names added to the dense candidates"
    )
    max_per_article: int = Field(
        2, ge=0, le=100, description="Passages of one article in the results before other articles' get a turn; 0 = no cap"
    )
    relevance_floor: float = Field(0.75, ge=0, le=1, description="No-LLM mode refuses below this sentence similarity")
    unknown_names_ceiling: float = Field(
        1.0, ge=0, le=1.01, description="No-LLM mode refuses when this share of the question's names is unknown"
    )
    unknown_names_min: int = Field(
        2, ge=1, le=10, description="... and at least this many are unknown (one alone is often just translated)"
    )

    # generation (all optional: without an endpoint the assistant answers extractively)
    llm_base_url: str | None = Field(
        None, validation_alias=AliasChoices("RAG_LLM_BASE_URL", "OPENAI_BASE_URL", "llm_base_url")
    )
    llm_api_key: str | None = Field(
        None, validation_alias=AliasChoices("RAG_LLM_API_KEY", "OPENAI_API_KEY", "llm_api_key")
    )
    llm_model: str = Field("gpt-4o-mini", validation_alias=AliasChoices("RAG_LLM_MODEL", "llm_model"))
    llm_timeout: float = Field(60.0, gt=0, validation_alias=AliasChoices("RAG_LLM_TIMEOUT", "llm_timeout"))
    llm_answer_timeout: float = Field(
        180.0, gt=0, validation_alias=AliasChoices("RAG_LLM_ANSWER_TIMEOUT", "llm_answer_timeout"),
        description="Seconds a streamed answer may take in all (llm_timeout bounds each wait for the next piece)")
    llm_max_retries: int = Field(2, ge=0, le=10, validation_alias=AliasChoices("RAG_LLM_MAX_RETRIES", "llm_max_retries"))
    llm_max_tokens: int = Field(
        512, ge=16, le=32768, validation_alias=AliasChoices("RAG_LLM_MAX_TOKENS", "llm_max_tokens"),
        description="Tokens an answer may have: a short cited answer needs far fewer, and a small model that "
                    "repeats itself stops here (noted as incomplete) instead of at the answer timeout")
    llm_gate: bool = Field(
        True, description="Refuse without asking the LLM when no passage found answers closely enough (as no-LLM mode does)"
    )
    context_tokens: int = Field(3000, ge=200, description="Token budget for passages in the prompt")

    # CPU threads (defaults follow bench/results-latency.md; 0 = every usable core)
    query_threads: int = Field(1, ge=0, le=256, description="torch threads for a question or a few sentences")
    index_threads: int = Field(0, ge=0, le=256, description="torch threads for bulk embedding while indexing")
    query_backend: Literal["onnx", "torch"] = Field(
        "onnx", description="Runtime for questions and other small calls (onnx: same vectors, a third of the CPU)"
    )

    # sign-in for `rag serve` (rag/auth.py): entries "name:role:secret", role "read" or "write"
    api_keys: str | None = Field(
        None, description="API keys, comma-separated name:role:secret entries (env RAG_API_KEYS)"
    )
    api_keys_file: Path | None = Field(
        None, description="File of API keys, one name:role:secret entry per line, # comments"
    )
    @field_validator("index", mode="before")
    @classmethod
    def _folder_or_database(cls, value: Any) -> Path | str:
        """A ``postgresql://`` (or ``postgres://``) URL stays a string; anything else is a folder."""
        if isinstance(value, str) and value.strip().startswith(DATABASE_SCHEMES):
            return value.strip()
        return Path(value) if isinstance(value, str) else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlFileSource(settings_cls))

    @property
    def llm_configured(self) -> bool:
        """An endpoint is configured when a base URL or an API key is given."""
        return bool(self.llm_base_url or self.llm_api_key)


class TomlFileSource(PydanticBaseSettingsSource):
    """Reads ``rag.toml`` (or ``$RAG_CONFIG``), failing loudly when it is malformed."""

    def __init__(self, settings_cls: type[BaseSettings]):
        super().__init__(settings_cls)
        self.data = read_config_file(config_file_path())

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.data)


def config_file_path() -> Path | None:
    explicit = os.environ.get("RAG_CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"RAG_CONFIG={explicit}: no such file")
        return path
    path = Path(DEFAULT_CONFIG_FILE)
    return path if path.is_file() else None


def read_config_file(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix or remove the file") from exc
    # a [rag] table is accepted as well as top-level keys
    return data.get("rag", data)


def load_settings(**overrides: Any) -> Settings:
    """Build settings, dropping ``None`` overrides so unset CLI flags do not mask env/file values."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from exc
