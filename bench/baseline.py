"""The project against what a user might pick instead, on the external benchmark's questions.

    python -m bench baseline [--quick]

Three systems over the same 513 passages, with the same model weights
(``rag.embeddings.resolve_model``) and e5's own "query: " / "passage: " prefixes:

* ``rag search``: ``Assistant.search`` with the project's defaults (chunks,
  dense + language-aware BM25 fusion, one torch thread per question);
* a plain script (below, ~30 lines): sentence-transformers over whole
  passages, exact FAISS inner-product search, torch's default threads;
* LlamaIndex's default ``VectorStoreIndex`` (its default sentence splitter and
  in-memory vector store) with ``HuggingFaceEmbedding`` on the same weights.

Each question goes through the three in turn (so load changes hit all alike)
asking for 20 results, as bench/external.py does; latency is wall time per
question, recall is at article level, with ``rag.evaluation``'s metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable

from rag.assistant import Assistant
from rag.embeddings import resolve_model
from rag.evaluation import EvalQuestion, load_questions, mean_scores, ranked_articles, retrieval_scores
from rag.tokens import install_offline_ranks

from .common import SHARED_BENCH, bench_settings, machine, median, table
from .latency import load_note, percentile

K = 20
RECALL_K = (1, 5, 20)


def recall_by_group(rank: Callable[[str], list[str]], questions: list[EvalQuestion],
                    ks: tuple[int, ...] = RECALL_K) -> dict[str, tuple[int, dict[str, float]]]:
    """Per question group: its size and mean scores (``recall@k`` ...); ``rank(question)`` gives article ids."""
    rows: dict[str, list[dict[str, float]]] = defaultdict(list)
    for question in questions:
        rows[question.group].append(retrieval_scores(rank(question.question), question.gold_docs, ks))
    return {group: (len(group_rows), mean_scores(group_rows)) for group, group_rows in sorted(rows.items())}


def plain_script(model_path: str, passages: list[dict]) -> Callable[[str], list[str]]:
    """The obvious do-it-yourself retriever: embed whole passages, search them exactly."""
    import faiss
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_path, device="cpu")
    vectors = model.encode([f"passage: {p['text']}" for p in passages], batch_size=32, normalize_embeddings=True)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    ids = [p["id"] for p in passages]

    def search(question: str) -> list[str]:
        query = model.encode([f"query: {question}"], normalize_embeddings=True)
        _, rows = index.search(query, K)
        return [ids[row] for row in rows[0] if row >= 0]

    return search


def llama_index(model_path: str, passages: list[dict]) -> Callable[[str], list[str]]:
    """LlamaIndex's defaults, with only the embedding model (and its prefixes) chosen."""
    install_offline_ranks("cl100k_base")  # LlamaIndex counts tokens with tiktoken's cl100k_base
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are local: never ask the hub
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    embed_model = HuggingFaceEmbedding(model_name=model_path, query_instruction="query: ",
                                       text_instruction="passage: ", device="cpu")
    documents = [Document(text=p["text"], id_=p["id"]) for p in passages]
    index = VectorStoreIndex.from_documents(documents, embed_model=embed_model)
    retriever = index.as_retriever(similarity_top_k=K)

    def search(question: str) -> list[str]:
        return list(dict.fromkeys(node.node.ref_doc_id for node in retriever.retrieve(question)))

    return search


def build(name: str, make: Callable[[], Callable[[str], list[str]]]) -> tuple[Callable[[str], list[str]], float]:
    started = time.perf_counter()
    search = make()
    seconds = time.perf_counter() - started
    print(f"{name}: built in {seconds:.0f} s", flush=True)
    return search, seconds


def run(quick: bool, skip_llama: bool) -> None:
    assistant = Assistant(bench_settings("external", SHARED_BENCH / "passages.jsonl"))
    print(assistant.index(progress=False).summary())
    settings = assistant.settings
    model_path = resolve_model(settings.model, settings.model_cache).path
    passages = [json.loads(line) for line in (SHARED_BENCH / "passages.jsonl").read_text().splitlines() if line]
    questions = load_questions(SHARED_BENCH / "questions.jsonl")
    questions = questions[::4] if quick else questions

    systems = {"rag search (project defaults)": (lambda q: ranked_articles(assistant.search(q, k=K)), None)}
    systems["plain sentence-transformers + FAISS script"] = build("plain script",
                                                                   lambda: plain_script(model_path, passages))
    if not skip_llama:
        systems["LlamaIndex default VectorStoreIndex"] = build("LlamaIndex", lambda: llama_index(model_path, passages))
    for search, _ in systems.values():  # warm up: first calls load lazily
        search(questions[0].question)

    rankings: dict[str, dict[str, list[str]]] = {name: {} for name in systems}
    times: dict[str, list[float]] = {name: [] for name in systems}
    print(f"{load_note()} before the questions", flush=True)
    for question in questions:
        for name, (search, _) in systems.items():
            started = time.perf_counter()
            rankings[name][question.question] = search(question.question)
            times[name].append(time.perf_counter() - started)

    ours = median(times["rag search (project defaults)"])
    rows = []
    for name, (_, build_seconds) in systems.items():
        groups = recall_by_group(rankings[name].__getitem__, questions, RECALL_K)
        rows.append([name, percentile(times[name], 50) * 1000, percentile(times[name], 95) * 1000,
                     f"{median(times[name]) / ours:.2f}×", "-" if build_seconds is None else f"{build_seconds:.0f}",
                     *[f"{means['recall@5']:.3f}" for _, means in groups.values()]])
    print(f"\n{machine()}; {len(questions)} questions; {load_note()} after; pid {os.getpid()}\n")
    print(table(["system", "p50 ms/question", "p95 ms", "p50 vs rag search", "build s (513 passages)",
                 *[f"recall@5 {group} (n={n})" for group, (n, _) in groups.items()]], rows))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="every 4th question")
    parser.add_argument("--skip-llama-index", action="store_true", help="only the plain script as a baseline")
    args = parser.parse_args(argv)
    run(args.quick, args.skip_llama_index)


if __name__ == "__main__":
    main()
