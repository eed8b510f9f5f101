"""pgvector HNSW recall@k against exact search on a real index's chunk vectors and real questions.

``python -m bench hnsw-recall --index FOLDER [--copies N] [--ef 40,100,200,400] [--ef-construction 64,128]``

§10's recall figures come from synthetic clustered vectors, which are far harder for a graph index
than text embeddings; this measures the same index definition the PostgreSQL store creates
(:mod:`rag.stores.postgres`: HNSW, cosine, m = 16) on the vectors of a saved embedded index, queried
with the embedded questions of the eval sets and the external benchmark.  ``--copies N`` adds N
perturbed copies of every vector (Gaussian noise of norm ``--noise``, renormalised) to reach a 100k+
table cheaply; they are real-ish, not real: say so wherever the figures go.  Results go to stdout as a
Markdown table.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
import psycopg

from rag.store import VECTORS
from rag.embeddings import Embedder
from rag.stores.postgres import vector_literal as literal

from .common import ROOT
from .external import private_database

TIE = 1e-5  # pgvector's float32 cosine against numpy's: equal to ~1e-7
QUESTION_FILES = (ROOT / "eval" / "questions.jsonl", ROOT / "eval" / "questions-news.jsonl",
                  ROOT.parent / "shared" / "bench" / "xquad-facqa" / "questions.jsonl")


def chunk_vectors(index: Path) -> np.ndarray:
    """Every chunk vector of the live generation of an embedded index (unit length: e5 is normalised)."""
    generation = index / (index / "CURRENT").read_text().strip()
    mapped = faiss.read_index(str(generation / VECTORS))
    inner = faiss.downcast_index(mapped.index) if hasattr(mapped, "index") else mapped
    return inner.reconstruct_n(0, inner.ntotal).astype(np.float32)


def questions(per_file: int) -> list[str]:
    """Up to ``per_file`` questions of each question file, in file order (the eval sets are smaller)."""
    texts = []
    for path in QUESTION_FILES:
        lines = path.read_text(encoding="utf-8").splitlines()[:per_file]
        texts += [json.loads(line)["question"] for line in lines if line.strip()]
    return texts


def with_copies(vectors: np.ndarray, copies: int, noise: float, seed: int = 0) -> np.ndarray:
    """The vectors plus ``copies`` perturbed copies of each: noise of norm ``noise``, renormalised."""
    rng = np.random.default_rng(seed)
    parts = [vectors]
    for _ in range(copies):
        jitter = rng.standard_normal(vectors.shape).astype(np.float32)
        jitter *= noise / np.linalg.norm(jitter, axis=1, keepdims=True)
        moved = vectors + jitter
        parts.append(moved / np.linalg.norm(moved, axis=1, keepdims=True))
    return np.vstack(parts)


def exact_scores(vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Every query's cosine to every vector (the ground truth; unit vectors, so a dot product)."""
    return queries @ vectors.T


def load(db: psycopg.Connection, vectors: np.ndarray) -> None:
    db.execute("CREATE EXTENSION IF NOT EXISTS vector")
    db.execute("DROP TABLE IF EXISTS recall_vectors")
    db.execute(f"CREATE TABLE recall_vectors (id int PRIMARY KEY, embedding vector({vectors.shape[1]}) NOT NULL)")
    with db.cursor().copy("COPY recall_vectors (id, embedding) FROM STDIN") as copy:
        for i, vector in enumerate(vectors):
            copy.write_row((i, literal(vector)))


def build(db: psycopg.Connection, ef_construction: int) -> float:
    """The store's index definition (pgvector defaults but ``ef_construction``), built after the load."""
    db.execute("DROP INDEX IF EXISTS recall_hnsw")
    db.execute("SET maintenance_work_mem = '512MB'")
    started = time.perf_counter()
    db.execute("CREATE INDEX recall_hnsw ON recall_vectors USING hnsw (embedding vector_cosine_ops) "
               f"WITH (m = 16, ef_construction = {int(ef_construction)})")
    return time.perf_counter() - started


def search(db: psycopg.Connection, queries: np.ndarray, k: int, order: str = "embedding <=> %s::vector"
           ) -> tuple[list[list[int]], float]:
    """Each query's ``k`` ids, ordered by ``order`` (the default goes through the HNSW index and returns at most
    ``hnsw.ef_search`` rows), and the median query time in ms."""
    found, times = [], []
    for query in queries:
        started = time.perf_counter()
        rows = db.execute(f"SELECT id FROM recall_vectors ORDER BY {order} LIMIT %s", (literal(query), k)).fetchall()
        times.append(time.perf_counter() - started)
        found.append([row[0] for row in rows])
    return found, 1000 * float(np.median(times))


def search_exact(db: psycopg.Connection, queries: np.ndarray, k: int) -> tuple[list[list[int]], float]:
    """The same query that no index can answer (a sequential scan): the exact search's latency in SQL.  An
    expression, not ``SET enable_indexscan = off``: psycopg prepares a repeated query, and the prepared plan
    would keep the index."""
    return search(db, queries, k, "(embedding <=> %s::vector) + 0")


def recall(found: list[list[int]], scores: np.ndarray, k: int) -> float:
    """The share of the exact ``k`` nearest that the first ``k`` ids found hold.  A found id counts if it scores
    at least the exact k-th score (less float rounding), so duplicate chunks tied at rank k count either way.
    (pgvector sorts its candidates exactly, so a true top-k id found anywhere is among the first k.)"""
    kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1]
    hits = [np.sum(row[ids[:k]] >= bound - TIE) / k for ids, row, bound in zip(found, scores, kth)]
    return float(np.mean(hits))


def figures(found: list[list[int]], scores: np.ndarray, ks: list[int]) -> str:
    """The table's recall cells, one per k."""
    return " | ".join(f"{recall(found, scores, k):.3f}" for k in ks)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench hnsw-recall", description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, required=True, help="a saved embedded index folder")
    parser.add_argument("--copies", type=int, default=0, help="perturbed copies of every vector to add")
    parser.add_argument("--noise", type=float, default=0.1, help="norm of each copy's noise")
    parser.add_argument("--per-file", type=int, default=300, help="questions taken from each question file")
    parser.add_argument("--k", default="10,50", help="recall@k figures (the retriever asks for 50 candidates)")
    parser.add_argument("--ef", default="40,100,200,400", help="hnsw.ef_search values")
    parser.add_argument("--ef-construction", default="64", help="ef_construction values")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench-hnsw-recall")
    args = parser.parse_args(argv)

    vectors = with_copies(chunk_vectors(args.index), args.copies, args.noise)
    queries = Embedder().embed_queries(questions(args.per_file)).astype(np.float32)
    truth = exact_scores(vectors, queries)
    print(f"{len(vectors):,} vectors ({args.copies} noisy copies, noise {args.noise}), {len(queries)} questions")
    ks = sorted(map(int, args.k.split(",")))
    print(f"| vectors | ef_construction | build s | ef_search | {' | '.join(f'recall@{k}' for k in ks)} | "
          f"p50 ms (LIMIT {ks[-1]}) |\n|---{'|---' * (len(ks) + 4)}|")
    with private_database(args.work, "recall") as url, psycopg.connect(url, autocommit=True) as db:
        load(db, vectors)
        for ef_construction in map(int, args.ef_construction.split(",")):
            seconds = build(db, ef_construction)
            for ef_search in map(int, args.ef.split(",")):
                db.execute(f"SET hnsw.ef_search = {ef_search}")
                found, p50 = search(db, queries, ks[-1])
                print(f"| {len(vectors):,} | {ef_construction} | {seconds:.1f} | {ef_search} | "
                      f"{figures(found, truth, ks)} | {p50:.2f} |", flush=True)
        exact, p50 = search_exact(db, queries, ks[-1])
        print(f"| {len(vectors):,} | – | – | exact (no index) | "
              f"{figures(exact, truth, ks)} | {p50:.2f} |")

