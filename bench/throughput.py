"""Embedding throughput: batch sizes, length batching, and faster inference paths for the same model.

    python -m bench throughput [--quick] [--batches-only]

1. Chunks per second (wall, and per CPU-second, on one torch thread) over a
   sample of the external benchmark's real chunks, for batch sizes 8/16/32/64.  sentence-transformers sorts each ``encode`` call's
   texts by length (longest first) before batching, so the project only has to
   hand it many texts per call; "no length batching" feeds it random batches
   one call each, which is what skipping that sort costs.
2. The same model run four ways: torch fp32 (the project's indexing path),
   torch with int8 dynamic quantisation of the Linear layers, ONNX Runtime fp32
   (the project's question path) and ONNX Runtime with int8 dynamic
   quantisation.  For each: chunks/s (bulk threads), single-question latency
   (1 thread), cosine to the torch fp32 vectors, and recall per question group
   on the external benchmark through the full search, over an index that path
   built.

Rounds are interleaved across settings so load changes hit them alike; medians.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from functools import cached_property

import numpy as np
import torch

from rag.assistant import Assistant
from rag.corpus import load_corpus
from rag.embeddings import ONNX_GRAPH, Embedder, OnnxEncoder
from rag.evaluation import load_questions, ranked_articles
from rag.indexing import chunk
from rag.threads import resolve

from .common import SHARED_BENCH, WORK, bench_settings, machine, median, table
from .baseline import recall_by_group
from .latency import load_note, thread_setting

BATCH_SIZES = (8, 16, 32, 64)
TORCH = "torch fp32 (project's indexing path)"
RECALL_K = 20  # results asked for, as bench/external.py does


class TorchInt8Embedder(Embedder):
    """The project's embedder on torch, every Linear layer quantised to int8 on the fly (weights), fp32 elsewhere."""

    def __init__(self):
        super().__init__(query_backend="torch")

    @cached_property
    def model(self):
        return torch.ao.quantization.quantize_dynamic(Embedder.model.func(self), {torch.nn.Linear}, dtype=torch.qint8)

    @property
    def fingerprint(self) -> str:
        return f"{self.resolved.fingerprint}+torch-int8"


class OnnxEmbedder(Embedder):
    """Every call on ONNX Runtime, fp32 or int8: small calls on query threads, as the project runs
    questions, big ones on bulk threads (the project indexes with torch instead)."""

    def __init__(self, int8: bool = False):
        super().__init__(query_backend="onnx")
        self.int8 = int8

    @property
    def fingerprint(self) -> str:
        return f"{self.resolved.fingerprint}+onnx{'-int8' if self.int8 else ''}"

    def _encode(self, texts: list[str], kind: str, batch_size: int, bulk: bool) -> np.ndarray:
        if not bulk:
            return super()._encode(texts, kind, batch_size, bulk)
        return self.onnx_bulk.encode([text.strip() for text in texts], self._prompt_text(kind), batch_size)

    @cached_property
    def onnx(self) -> OnnxEncoder:
        return OnnxEncoder(self.onnx_folder, self.query_threads, self.graph)

    @cached_property
    def onnx_bulk(self) -> OnnxEncoder:
        return OnnxEncoder(self.onnx_folder, self.bulk_threads, self.graph)

    @cached_property
    def graph(self):
        """The project's export, or its int8 dynamic quantisation by ONNX Runtime."""
        if not self.int8:
            return self.onnx_folder / ONNX_GRAPH
        from onnxruntime.quantization import QuantType, quantize_dynamic

        int8 = WORK / "throughput" / f"{self.onnx_folder.name}-int8.onnx"
        if not int8.exists():
            int8.parent.mkdir(parents=True, exist_ok=True)
            quantize_dynamic(str(self.onnx_folder / ONNX_GRAPH), str(int8), weight_type=QuantType.QInt8)
        return int8


def chunk_texts() -> list[str]:
    """Every chunk of the external benchmark as the index embeds it (title and text)."""
    settings = bench_settings("throughput", SHARED_BENCH / "passages.jsonl")
    articles, _ = load_corpus(settings.corpus)
    return [c.embedding_text() for article in articles for c in chunk(settings, article)]


def chunks_per_second(embed, texts: list[str]) -> float:
    started = time.perf_counter()
    embed(texts)
    return len(texts) / (time.perf_counter() - started)


def batch_table(embedder: Embedder, sample: list[str], rounds: int) -> str:
    """Batch sizes with length sorting (one call), and batch 32 without it (one call per random batch).

    On one thread, so the barrier waits of two threads on busy cores (bench/latency.py) do not drown the
    batching effect; chunks per CPU-second is what an idle core would do.
    """
    shuffled = random.Random(0).sample(sample, len(sample))

    def unsorted(texts):
        for first in range(0, len(texts), 32):
            embedder.embed_passages(texts[first : first + 32], batch_size=32, bulk=True)

    runs = {f"{size}, length-sorted": lambda texts, size=size: embedder.embed_passages(texts, size, bulk=True)
            for size in BATCH_SIZES}
    runs["32, no length batching"] = unsorted
    speeds: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    with thread_setting(embedder, 1):
        for _ in range(rounds):
            for name, run in runs.items():
                wall, cpu = time.perf_counter(), time.process_time()
                run(shuffled)
                speeds[name].append((len(shuffled) / (time.perf_counter() - wall),
                                     len(shuffled) / (time.process_time() - cpu)))
    reference = median([cpu for _, cpu in speeds["32, length-sorted"]])
    rows = [[name, median([w for w, _ in v]), median([c for _, c in v]),
             f"{median([c for _, c in v]) / reference:.2f}×"] for name, v in speeds.items()]
    return table(["batch size", "chunks/s (wall)", "chunks per CPU-second", "CPU speed vs batch 32 sorted"], rows)


def query_latency_ms(embedder: Embedder, questions: list[str]) -> float:
    times = []
    for question in questions:
        started = time.perf_counter()
        embedder.embed_query(question)
        times.append(time.perf_counter() - started)
    return median(times) * 1000


def path_table(paths: dict[str, Embedder], sample: list[str], questions, rounds: int) -> str:
    reference = paths[TORCH].embed_passages(sample, bulk=True)
    for embedder in paths.values():  # load, export, quantise before anything is timed
        embedder.embed_passages(sample[:4])
    speeds = {name: [] for name in paths}
    latency = {name: [] for name in paths}
    short_questions = [q.question for q in questions[:: max(1, len(questions) // 50)]]
    for _ in range(rounds):
        for name, embedder in paths.items():
            speeds[name].append(chunks_per_second(lambda texts: embedder.embed_passages(texts, bulk=True), sample))
            latency[name].append(query_latency_ms(embedder, short_questions))
    rows, base = [], median(speeds[TORCH])
    for name, embedder in paths.items():
        cosine = float(np.min(np.sum(embedder.embed_passages(sample, bulk=True) * reference, axis=1)))
        groups = recall_of(name, embedder, questions)
        rows.append([name, median(speeds[name]), f"{median(speeds[name]) / base:.2f}×", median(latency[name]),
                     f"{cosine:.4f}", *[f"{means['recall@5']:.3f}" for _, means in groups.values()]])
        print(f"  {name}: {rows[-1]}", flush=True)
    return table(["path", "chunks/s", "speed vs torch fp32", "query embed p50 ms", "min cosine to fp32",
                  *[f"recall@5 {group} (n={n})" for group, (n, _) in groups.items()]], rows)


def recall_of(name: str, embedder: Embedder, questions) -> dict[str, tuple[int, dict[str, float]]]:
    """Recall per group through the project's search, over an index this path built."""
    slug = "external" if type(embedder) is Embedder else "throughput-" + name.replace(" ", "-")  # reuse its index
    assistant = Assistant(bench_settings(slug, SHARED_BENCH / "passages.jsonl"), embedder=embedder)
    print(f"  {name}: {assistant.index(progress=False).summary()}", flush=True)
    return recall_by_group(lambda text: ranked_articles(assistant.search(text, k=RECALL_K)), questions)


def run(quick: bool, batches_only: bool) -> None:
    texts = chunk_texts()
    sample = texts[:: 18 if quick else 6]
    embedder = Embedder(query_backend="torch")
    transformer = embedder.model[0]
    print(f"{machine()}; {len(texts)} chunks, sample of {len(sample)}; {load_note()}")
    print(f"sentence-transformers sorts by length inside encode: yes (longest first); interleaving for "
          f"flattened inputs: {getattr(transformer, 'can_flatten_inputs', False)}; "
          f"max_seq_length {embedder.model.max_seq_length}; bulk threads {resolve(embedder.bulk_threads)}\n")
    rounds = 1 if quick else 2
    print(batch_table(embedder, sample, rounds))
    print(f"\n{load_note()}\n")
    if batches_only:
        return

    questions = load_questions(SHARED_BENCH / "questions.jsonl")
    questions = questions[::6] if quick else questions
    paths = {
        TORCH: embedder,
        "torch int8 dynamic": TorchInt8Embedder(),
        "ONNX Runtime fp32 (project's question path)": OnnxEmbedder(),
        "ONNX Runtime int8": OnnxEmbedder(int8=True),
    }
    print(path_table(paths, sample, questions, rounds))
    print(f"\n{load_note()}; {len(questions)} questions; pid {os.getpid()}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="36-chunk sample, one round, every 6th question")
    parser.add_argument("--batches-only", action="store_true", help="only the batch-size table")
    args = parser.parse_args(argv)
    run(args.quick, args.batches_only)


if __name__ == "__main__":
    main()
