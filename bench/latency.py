"""Query latency at 10k chunks, stage by stage, and what torch's thread count does to it.

    python -m bench latency [--quick] [--copies N] [--sentence-weight W] [--stages-only | --threads-only]

The corpus is the external benchmark's 513 passages repeated N times with new
ids (a bulk JSONL import: 16 copies = 10,096 chunks of real text, so BM25 sees
real word statistics).  Only the 631 distinct chunk texts go through the model;
every repeat gets its original's vector plus Gaussian noise (sigma 0.01 per
dimension, renormalised), so vector search scans 10k distinct vectors without
a quarter of an hour of embedding.  The index is built once under the work
folder and reused.

Questions are the external benchmark's (909; --quick: 200).  Stages are timed
by calling the pieces the retriever calls, in its order (the vector search
twice: as ``IndexStore.search`` runs it, and inside
``rag.threads.faiss_threads(query_threads)``); the end-to-end figure is
``Assistant.search`` itself, with the project's defaults.  Each stage also has
its CPU time, which on a loaded machine is the better guess of the wall time
on an idle one (single-threaded stages only).  Thread settings are compared
question by question in rotation, so load changes hit every setting alike.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from contextlib import contextmanager

import faiss
import numpy as np
import torch

from rag.assistant import Assistant
from rag.embeddings import Embedder
from rag.evaluation import load_questions
from rag.generation import build_messages
from rag.indexing import update_index
from rag.language import detect_language
from rag.retrieval import fuse
from rag.threads import faiss_threads

from .common import SHARED_BENCH, WORK, bench_settings, machine, median, table

NOISE = 0.01


class ReplicatingEmbedder:
    """Embeds each distinct passage text once with the real model; repeats get a noisy copy."""

    def __init__(self, embedder: Embedder):
        self.embedder = embedder
        self.fingerprint = f"{embedder.fingerprint}+replicated-noise{NOISE}"  # never mistaken for a real index
        self.dim = embedder.dim
        self.seen: dict[str, tuple[np.ndarray, int]] = {}
        self.sentences: dict[str, np.ndarray] = {}  # a chunk text's sentence vectors, pooled from its pass
        self.rng = np.random.default_rng(0)

    def embed_passages(self, texts: list[str], batch_size: int = 32, *, bulk: bool = False) -> np.ndarray:
        new = list(dict.fromkeys(t for t in texts if t not in self.seen))
        for text, vector in zip(new, self.embedder.embed_passages(new, batch_size, bulk=bulk) if new else []):
            self.seen[text] = (vector, 0)
        return np.vstack([self._next(text) for text in texts])

    def embed_passages_and_spans(self, texts: list[str], spans: list[list[tuple[int, int]]],
                                 batch_size: int = 32) -> tuple[np.ndarray, list[np.ndarray]]:
        """As :meth:`Embedder.embed_passages_and_spans`; a repeat's sentences keep its original's vectors."""
        new = list(dict.fromkeys((t, tuple(own)) for t, own in zip(texts, spans) if t not in self.sentences))
        if new:
            vectors, pooled = self.embedder.embed_passages_and_spans([t for t, _ in new], [list(own) for _, own in new],
                                                                     batch_size)
            for (text, _), vector, own in zip(new, vectors, pooled):
                self.seen[text] = (vector, 0)
                self.sentences[text] = own
        return np.vstack([self._next(text) for text in texts]), [self.sentences[text] for text in texts]

    def _next(self, text: str) -> np.ndarray:
        vector, uses = self.seen[text]
        self.seen[text] = (vector, uses + 1)
        if uses == 0:
            return vector
        noisy = vector + self.rng.normal(0, NOISE, vector.shape).astype(np.float32)
        return noisy / np.linalg.norm(noisy)


def write_bulk_corpus(copies: int):
    passages = [json.loads(line) for line in (SHARED_BENCH / "passages.jsonl").read_text().splitlines() if line]
    path = WORK / "latency" / f"bulk-x{copies}.jsonl"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps({**p, "id": f"{p['id']}-copy{c}"}, ensure_ascii=False) for c in range(copies) for p in passages]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def open_assistant(copies: int, **overrides) -> Assistant:
    settings = bench_settings(f"latency-x{copies}", write_bulk_corpus(copies), **overrides)
    embedder = Embedder.from_settings(settings)
    report = update_index(settings, ReplicatingEmbedder(embedder), progress=True)
    print(report.summary())
    assistant = Assistant(settings, embedder=embedder)
    return assistant


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def time_stages(assistant: Assistant, question: str, timings: dict[str, list[tuple[float, float]]]) -> None:
    """One question through the retriever's steps, each timed (wall, CPU), then the prompt built from its hits."""
    s = assistant.settings
    store, embedder, retriever = assistant.store, assistant.embedder, assistant.retriever()
    clock = now()

    def lap(stage: str) -> None:
        nonlocal clock
        timings[stage].append(since(clock))
        clock = now()

    query = embedder.embed_query(question)
    lap("query embedding")
    store.search(query, max(s.top_k, s.candidates))
    lap("vector search (FAISS default threads)")
    with faiss_threads(s.query_threads):
        dense = store.search(query, max(s.top_k, s.candidates))
    lap(f"vector search (FAISS on query_threads = {s.query_threads})")
    passages = store.passages(dict(dense))
    lap("passage fetch (SQLite)")
    reranked = retriever._rerank(query, dense, passages, detect_language(question))
    lap(f"re-ranking: language pull + best stored sentence of {s.rerank_candidates} candidates")
    by_names, by_words = store.lexical_search(question, s.candidates)
    lap("lexical search (BM25)")
    fuse([[(row_id, 0.0) for row_id in reranked], by_names, by_words], [1.0, s.lexical_weight, s.lexical_words_weight])
    lap("fusion")
    hits = assistant.search(question)  # untimed: the prompt needs real Hit objects
    clock = now()
    build_messages(question, hits, answer_lang="en", budget_tokens=s.context_tokens, encoding=s.encoding)
    lap("prompt building")


def now() -> tuple[float, float]:
    """Wall clock and this process's CPU time: on a loaded machine the CPU time is what an idle core would take."""
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = now()
    return wall - start[0], cpu - start[1]


def stage_table(assistant: Assistant, questions: list[str]) -> str:
    timings: dict[str, list[tuple[float, float]]] = defaultdict(list)
    end_to_end = []
    for question in questions:
        started = now()
        assistant.search(question)
        end_to_end.append(since(started))
        time_stages(assistant, question, timings)
    total_p50 = percentile([wall for wall, _ in end_to_end], 50)

    def row(stage: str, values: list[tuple[float, float]]) -> list:
        wall, cpu = [w * 1000 for w, _ in values], [c * 1000 for _, c in values]
        return [stage, percentile(wall, 50), percentile(wall, 95), percentile(cpu, 50), percentile(cpu, 95),
                f"{percentile(wall, 50) / 1000 / total_p50:.0%}"]

    rows = [row(stage, values) for stage, values in timings.items()]
    rows.append(row("**question → ranked passages (Assistant.search)**", end_to_end))
    return table(["stage", "wall p50 ms", "wall p95 ms", "CPU p50 ms", "CPU p95 ms", "wall p50 / end-to-end"], rows)


@contextmanager
def thread_setting(embedder: Embedder, threads: int, backend: str = "torch"):
    """Every call of the embedder on ``backend`` and ``threads`` threads, FAISS too, for one measurement.

    ONNX Runtime's thread count is fixed when its session is made (with the query threads of the first use).
    """
    saved = embedder.query_threads, embedder.bulk_threads, embedder.query_backend, faiss.omp_get_max_threads()
    embedder.query_threads = embedder.bulk_threads = threads
    embedder.query_backend = backend
    faiss.omp_set_num_threads(threads)
    try:
        yield
    finally:
        embedder.query_threads, embedder.bulk_threads, embedder.query_backend = saved[:3]
        faiss.omp_set_num_threads(saved[3])


def thread_table(assistant: Assistant, questions: list[str], sentences: list[str], passages: list[str],
                 rounds: int) -> str:
    """Per setting: one question (embedding, vector search, whole search), 32 sentences, a bulk batch."""
    default = torch.get_num_threads()  # what torch chose at start-up: one per core
    counts = {1: "1 thread", 2: "2 threads", default: f"{default} threads (torch default)",
              2 * default: f"{2 * default} threads (oversubscribed)"}
    settings = {f"torch, {label}": (n, "torch") for n, label in counts.items()}
    settings["ONNX Runtime, 1 thread (project default)"] = (1, "onnx")
    embedder, store = assistant.embedder, assistant.store
    results: dict[str, dict[str, list[float]]] = {name: defaultdict(list) for name in settings}
    for question in questions:
        assistant.search(question)  # warm the SQLite page cache, so every setting below does the same work
        for name, setting in settings.items():
            with thread_setting(embedder, *setting):
                started = time.perf_counter()
                query = embedder.embed_query(question)
                results[name]["embed"].append(time.perf_counter() - started)
                started = time.perf_counter()
                store.search(query, 50)
                results[name]["vector"].append(time.perf_counter() - started)
                started = time.perf_counter()
                assistant.search(question)
                results[name]["search"].append(time.perf_counter() - started)
    for _ in range(rounds):
        for name, setting in settings.items():
            with thread_setting(embedder, *setting):
                started = time.perf_counter()
                embedder.embed_passages(sentences)
                results[name]["sentences"].append(time.perf_counter() - started)
                if setting[1] == "torch":  # bulk work always runs on torch
                    results[name]["bulk"].append(chunks_per_second(embedder, passages))
    base = results["torch, 1 thread"]
    rows = []
    for name, r in results.items():
        bulk = [median(r["bulk"]), f"{median(r['bulk']) / median(base['bulk']):.2f}×"] if r["bulk"] else ["-", "-"]
        rows.append([name, median(r["embed"]) * 1000, percentile(r["embed"], 95) * 1000,
                     median(r["vector"]) * 1000, median(r["search"]) * 1000, median(r["sentences"]) * 1000,
                     f"{median(r['search']) / median(base['search']):.2f}×", *bulk])
    return table(["runtime, threads", "query embed p50 ms", "p95 ms", "vector search p50 ms",
                  "Assistant.search p50 ms", f"{len(sentences)} sentences ms", "search time vs torch 1 thread",
                  f"bulk chunks/s ({len(passages)} passages)", "bulk speed vs 1 thread"], rows)


def chunks_per_second(embedder: Embedder, passages: list[str]) -> float:
    started = time.perf_counter()
    embedder.embed_passages(passages, batch_size=32, bulk=True)
    return len(passages) / (time.perf_counter() - started)


def load_note() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min) / {five:.1f} (5 min)"


def run(quick: bool, copies: int, stages_only: bool = False, threads_only: bool = False, **overrides) -> None:
    assistant = open_assistant(copies, **overrides)
    questions = [q.question for q in load_questions(SHARED_BENCH / "questions.jsonl")]
    for question in questions[:10]:  # load the model, the BM25 index, warm the caches
        assistant.search(question)
    stage_questions = questions[:: len(questions) // 200][:200] if quick else questions
    print(f"\n{machine()}; {assistant.store.vectors.ntotal} chunks; torch {torch.__version__}, "
          f"{torch.get_num_threads()} torch threads at start; {load_note()} before\n")
    print(f"Per stage, {len(stage_questions)} questions, project defaults (query_backend="
          f"{assistant.settings.query_backend}, query_threads={assistant.settings.query_threads}) "
          f"{overrides or ''}:\n")
    if not threads_only:
        print(stage_table(assistant, stage_questions))
        print(f"\n{load_note()} after the stage run\n")
    if stages_only:
        return

    texts = [p.text for p in assistant.store.all_passages()[:631]]
    sentences = [s.strip() + "." for s in " ".join(texts[:10]).split(".") if len(s.strip()) > 20][:32]
    bulk = texts[: 32 if quick else 64]
    thread_questions = questions[1:: len(questions) // (40 if quick else 100)]
    rounds = 1 if quick else 2
    print(f"Thread settings, {len(thread_questions)} questions in rotation, {rounds} bulk round(s):\n")
    print(thread_table(assistant, thread_questions, sentences, bulk, rounds))
    print(f"\n{load_note()} after the thread run")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="200 questions, fewer thread rounds")
    parser.add_argument("--copies", type=int, default=16, help="repeats of the 513 passages (16 = 10k chunks)")
    parser.add_argument("--sentence-weight", type=float, help="override the re-ranking by best sentence (0 = off)")
    parser.add_argument("--stages-only", action="store_true", help="skip the thread settings table")
    parser.add_argument("--threads-only", action="store_true", help="skip the stage table")
    args = parser.parse_args(argv)
    overrides = {} if args.sentence_weight is None else {"sentence_weight": args.sentence_weight}
    run(args.quick, args.copies, args.stages_only, args.threads_only, **overrides)


if __name__ == "__main__":
    main()
