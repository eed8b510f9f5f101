"""The two index backends side by side, on synthetic vectors:
``python -m bench stores [--sizes 10000,100000] [--backends embedded,postgres]``.

For each size (chunks) and backend (the embedded FAISS + SQLite folder, and
PostgreSQL + pgvector started privately from ``pgserver``): search latency
p50/p95 (k = 10, unfiltered and with a filter admitting ~2 % of the articles),
recall@10 against exact search, the lexical search, the latency of adding one
article, the time to open the index, and the memory a server process holds
after opening it and answering a few searches.

The vectors are clustered random unit vectors of the model's dimension (384),
so HNSW and IVF have structure to exploit; the texts are a few words drawn from
a synthetic vocabulary, tokenised as they are (no model, no tokeniser): this
measures the stores, not the embedding.  Medians of repeated runs in one
process; the machine is shared, so compare the backends' ratios.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rag.chunking import Chunk
from rag.corpus import Article
from rag.filters import SearchFilters
from rag.names import ArticleVocabulary
from rag.store import Manifest, SentenceVectors
from rag.stores import backend_for, open_store
from rag.threads import faiss_threads

from .common import ROOT, machine, median, table

DIM = 384
PER_ARTICLE = 4
QUERIES = 200
K = 10
VOCABULARY = 5000
RARE_SOURCE = "rare.example"  # 1 article in 50
MANIFEST = Manifest(model="synthetic", model_fingerprint="synthetic-384", dim=DIM, chunk_tokens=220,
                    chunk_overlap=40, encoding="o200k_base", parser_version="1")


def clustered(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).standard_normal((200, DIM))
    x = centres[rng.integers(0, 200, n)] + rng.standard_normal((n, DIM)) * 0.6
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def article(i: int, vectors: np.ndarray, rng: np.random.Generator):
    doc_id = f"doc-{i:07d}"
    words = [[f"w{w}" for w in rng.integers(0, VOCABULARY, 30)] for _ in range(PER_ARTICLE)]
    texts = [" ".join(w) for w in words]
    chunks = [Chunk(doc_id, p, text, 0, len(text), 40, doc_id, sentences=((0, len(text)),))
              for p, text in enumerate(texts)]
    source = RARE_SOURCE if i % 50 == 0 else "common.example"
    a = Article(doc_id, doc_id, "\n\n".join(texts), ("vi", "id", "ms")[i % 3], f"https://{source}/{doc_id}",
                "2025-01-01", f"{doc_id}.jsonl", f"fp-{doc_id}", source)
    sentences = [SentenceVectors([(0, len(t))], v[None, :], v[None, :]) for t, v in zip(texts, vectors)]
    vocabulary = ArticleVocabulary(tuple(w for chunk_words in words for w in chunk_words), frozenset())
    return a, chunks, vectors, sentences, [(frozenset(), w) for w in words], vocabulary


def fill(location, n_chunks: int) -> tuple[float, np.ndarray]:
    """Write ``n_chunks`` chunks in one generation; the seconds it took, and the vectors (chunk i of article j
    is row ``j * PER_ARTICLE + i``)."""
    vectors = clustered(n_chunks, 1)
    rng = np.random.default_rng(2)
    started = time.perf_counter()
    with backend_for(location).writer(MANIFEST, start_empty=True, ivf_threshold=50_000) as writer:
        for j in range(n_chunks // PER_ARTICLE):
            writer.add_article(*article(j, vectors[j * PER_ARTICLE:(j + 1) * PER_ARTICLE], rng))
        writer.commit()
    return time.perf_counter() - started, vectors


def measure(name: str, location, n_chunks: int) -> dict:
    load_before = os.getloadavg()[0]
    fill_seconds, vectors = fill(location, n_chunks)
    opens = []
    for _ in range(3):
        started = time.perf_counter()
        store = open_store(location)
        store.search(vectors[0], K)
        opens.append(time.perf_counter() - started)
        store.close()
    store = open_store(location)
    rng = np.random.default_rng(3)
    queries = vectors[rng.integers(0, n_chunks, QUERIES)] + rng.standard_normal((QUERIES, DIM)).astype(np.float32) * 0.3
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    chunk_of_row = {p.row_id: p.chunk_id for p in store.all_passages()}
    chunk_ids = np.array([f"doc-{j // PER_ARTICLE:07d}#{j % PER_ARTICLE}" for j in range(n_chunks)])
    rare = SearchFilters.of(sources=RARE_SOURCE)
    timings: dict[str, list[float]] = {"search": [], "filtered search": [], "lexical search": []}
    recall = []
    for q in queries:
        started = time.perf_counter()
        with faiss_threads(1):  # as the retriever searches (query_threads): FAISS's default spins on a busy machine
            found = store.search(q, K)
        timings["search"].append(time.perf_counter() - started)
        exact = set(chunk_ids[np.argsort(-(vectors @ q))[:K]])
        recall.append(len(exact & {chunk_of_row[r] for r, _ in found}) / K)
        started = time.perf_counter()
        with faiss_threads(1):
            store.search(q, K, rare)
        timings["filtered search"].append(time.perf_counter() - started)
    for i in range(50):
        started = time.perf_counter()
        store.lexical_search(f"Find W{i} W{i + 7} w{i + 13}", 50)
        timings["lexical search"].append(time.perf_counter() - started)
    store.close()
    adds = []
    add_rng = np.random.default_rng(4)
    for i in range(3):
        started = time.perf_counter()
        with backend_for(location).writer(MANIFEST, start_empty=False, ivf_threshold=50_000) as writer:
            writer.add_article(*article(10_000_000 + i, clustered(PER_ARTICLE, 10 + i), add_rng))
            writer.commit()
        adds.append(time.perf_counter() - started)
    return {
        "backend": name, "chunks": n_chunks, "fill s": fill_seconds, "open s": median(opens),
        **{f"{stage} p50 ms": 1000 * float(np.percentile(t, 50)) for stage, t in timings.items()},
        **{f"{stage} p95 ms": 1000 * float(np.percentile(t, 95)) for stage, t in timings.items() if stage != "lexical search"},
        "recall@10": float(np.mean(recall)), "add one article s": median(adds), **process_memory(location),
        "load": f"{load_before:.1f}–{os.getloadavg()[0]:.1f}",  # the 1-minute load average when the row began and ended
    }


MEMORY_PROBE = """
import sys, numpy as np
def rss(pid='self'):
    return int(next(l for l in open(f'/proc/{pid}/status') if l.startswith('VmRSS')).split()[1]) / 1024
from rag.stores import open_store
import rag.stores.embedded, rag.retrieval
try:
    from rag.stores.postgres import PostgresStore
except ImportError:
    PostgresStore = type(None)
before = rss()
store = open_store(sys.argv[1])
for seed in range(20):
    q = np.random.default_rng(seed).standard_normal(store.manifest.dim).astype(np.float32)
    store.search(q / np.linalg.norm(q), 10)
    store.lexical_search('Find W1 W2', 50)
pg = isinstance(store, PostgresStore)
backend = rss(store.db.execute('SELECT pg_backend_pid()').fetchone()[0]) if pg else 0.0
print(rss() - before, rss(), backend)
"""


def process_memory(location) -> dict[str, float]:
    """What a fresh server process holds after opening the index and a few searches: MB beyond its imports, its
    whole resident set, and (PostgreSQL) the resident set of the database process serving its connection, which
    counts the shared buffers it touched."""
    result = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(location)], cwd=ROOT, capture_output=True,
                            text=True, check=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    added, total, backend = (float(x) for x in result.stdout.strip().splitlines()[-1].split())
    return {"process MB": added, "process RSS MB": total, "db backend RSS MB": backend}


def main(argv: list[str]) -> None:
    sizes = [10_000]
    if "--sizes" in argv:
        sizes = [int(s) for s in argv[argv.index("--sizes") + 1].split(",")]
    backends = ["embedded", "postgres"]
    if "--backends" in argv:
        backends = argv[argv.index("--backends") + 1].split(",")
    import pgserver  # the test extra: a private PostgreSQL with pgvector

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-stores-") as work:
        server = pgserver.get_server(Path(work) / "pgdata", cleanup_mode="stop")
        try:
            for size in sizes:
                if "embedded" in backends:
                    rows.append(measure("embedded", Path(work) / f"index-{size}", size))
                    print(json.dumps(rows[-1]), flush=True)
                if "postgres" in backends:
                    server.psql(f"CREATE DATABASE bench_{size};")
                    rows.append(measure("postgres", server.get_uri(f"bench_{size}"), size))
                    print(json.dumps(rows[-1]), flush=True)
        finally:
            server.cleanup()
    print(f"\n{machine()}\n")
    headers = list(rows[0])
    print(table(headers, [[row[h] for h in headers] for row in rows]))


if __name__ == "__main__":
    main(sys.argv[1:])
