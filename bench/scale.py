"""How FAISS index types scale: build time, size, single-query latency and recall@10 at 10k–1M chunks.

    python -m bench scale [--quick] [--sizes N ...] [--types flat hnsw ivf-flat ivf-sq8 ivf-pq]
                          [--max-build-seconds S]

The vectors are synthetic but shaped like sentence embeddings rather than
uniform noise (see :class:`Mixture`): approximate indexes look far better on
noise-free clusters and far worse on isotropic noise than on real data.
Recall@10 is measured against exact search over the same vectors; latency is
one query at a time with FAISS on one thread (how an interactive query runs),
build uses every core.  Size is the serialised index, about what it takes in
memory.  ``--quick`` stops at 100k.
"""

from __future__ import annotations

import argparse
import gc
import math
import time
from dataclasses import dataclass

import faiss
import numpy as np

from rag.store import TRAIN_POINTS_PER_LIST, ivf_lists

from .common import machine, table

DIM = 384
K = 10
QUERIES = 300
HNSW_M = 32
HNSW_EF_SEARCH = (32, 128)
NPROBES = (8, 32, 128)
PQ_M = 48  # bytes per vector
BUILD_THREADS = faiss.omp_get_max_threads()  # every core for building; searches run on one
NOISE = 0.01  # per dimension, on top of the topic structure


@dataclass(frozen=True)
class Mixture:
    """Unit vectors like a sentence encoder's: a shared direction, topics, and a low intrinsic dimension.

    Every vector is ``normalise(common + P @ z + noise)`` where ``z`` is drawn
    from one of ``topics`` Gaussian clusters (of uneven size and spread) in a
    64-dimensional latent space and ``P`` is a fixed random 64→384 projection.
    The common part makes random pairs score around 0.7 in cosine, close
    neighbours around 0.9, as multilingual-e5 does.
    """

    common: np.ndarray
    centres: np.ndarray
    spreads: np.ndarray
    weights: np.ndarray
    projection: np.ndarray

    @classmethod
    def create(cls, seed: int = 0, topics: int = 2000, latent: int = 64) -> Mixture:
        rng = np.random.default_rng(seed)
        common = rng.standard_normal(DIM)
        weights = rng.lognormal(0.0, 1.0, topics)
        return cls(
            common=common / np.linalg.norm(common) * 1.8,
            centres=rng.standard_normal((topics, latent)),
            spreads=rng.uniform(0.4, 0.9, topics),
            weights=weights / weights.sum(),
            projection=rng.standard_normal((latent, DIM)) / math.sqrt(latent * DIM),
        )

    def sample(self, n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        out = np.empty((n, DIM), dtype=np.float32)
        for first in range(0, n, 50_000):
            m = min(50_000, n - first)
            topic = rng.choice(len(self.weights), m, p=self.weights)
            z = self.centres[topic] + rng.standard_normal((m, self.centres.shape[1])) * self.spreads[topic, None]
            x = self.common + z @ self.projection + rng.standard_normal((m, DIM)) * NOISE
            out[first : first + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
        return out


@dataclass
class Built:
    name: str
    index: faiss.Index
    seconds: float


def train_sample(base: np.ndarray, lists: int) -> np.ndarray:
    """The training sample rag.store uses: TRAIN_POINTS_PER_LIST random vectors per list."""
    return base[np.sort(np.random.default_rng(0).permutation(len(base))[: lists * TRAIN_POINTS_PER_LIST])]


@dataclass
class Coarse:
    """The IVF lists' centroids, trained once per size and shared by the IVF variants (their build time includes it)."""

    quantizer: faiss.IndexFlatIP
    seconds: float

    @classmethod
    def train(cls, base: np.ndarray, lists: int) -> Coarse:
        started = time.perf_counter()
        quantizer = faiss.IndexFlatIP(DIM)
        clustering = faiss.Clustering(DIM, lists)
        clustering.spherical = True  # what IndexIVF does for inner product
        clustering.train(train_sample(base, lists), quantizer)
        return cls(quantizer, time.perf_counter() - started)


def make_index(factory: str, coarse: Coarse | None) -> faiss.Index:
    ip = faiss.METRIC_INNER_PRODUCT
    if factory == "hnsw":
        return faiss.IndexHNSWFlat(DIM, HNSW_M, ip)
    if factory == "flat":
        return faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))
    lists = coarse.quantizer.ntotal
    if factory == "ivf-flat":
        return faiss.IndexIVFFlat(coarse.quantizer, DIM, lists, ip)
    if factory == "ivf-sq8":
        return faiss.IndexIVFScalarQuantizer(coarse.quantizer, DIM, lists, faiss.ScalarQuantizer.QT_8bit, ip)
    index = faiss.IndexIVFPQ(coarse.quantizer, DIM, lists, PQ_M, 8, ip)
    index.do_polysemous_training = False  # not used by inner-product search, and it takes minutes
    return index


def build(name: str, factory: str, base: np.ndarray, coarse: Coarse | None) -> Built:
    """Train what needs training (the IVF codecs on the same sample) and add everything, timed."""
    started = time.perf_counter()
    index = make_index(factory, coarse)
    if not index.is_trained:
        index.train(train_sample(base, coarse.quantizer.ntotal))
    if isinstance(index, faiss.IndexIDMap2):
        index.add_with_ids(base, np.arange(len(base), dtype=np.int64))
    else:
        index.add(base)
    seconds = time.perf_counter() - started + (coarse.seconds if factory.startswith("ivf") else 0.0)
    return Built(name, index, seconds)


def single_queries(index: faiss.Index, queries: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """Search one query at a time on one thread, as an interactive user does; ids and milliseconds."""
    faiss.omp_set_num_threads(1)
    try:
        for q in queries[:10]:  # warm caches
            index.search(q[None], K)
        ids, millis = [], []
        for q in queries:
            started = time.perf_counter()
            _, found = index.search(q[None], K)
            millis.append((time.perf_counter() - started) * 1000)
            ids.append(found[0])
        return np.array(ids), millis
    finally:
        faiss.omp_set_num_threads(BUILD_THREADS)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth)]))


def measure(built: Built, queries: np.ndarray, truth: np.ndarray, setting: str, n: int, size_mb: float) -> list:
    found, millis = single_queries(built.index, queries)
    p50, p95 = np.percentile(millis, [50, 95])
    return [n, built.name, setting or "-", built.seconds, size_mb, float(p50), float(p95), recall(found, truth)]


TYPES = ("flat", "hnsw", "ivf-flat", "ivf-sq8", "ivf-pq")


def variants(n: int) -> list[tuple[str, str]]:
    lists = ivf_lists(n)
    return [
        ("Flat (exact)", "flat"),
        (f"HNSW{HNSW_M}", "hnsw"),
        (f"IVF{lists},Flat", "ivf-flat"),
        (f"IVF{lists},SQ8", "ivf-sq8"),
        (f"IVF{lists},PQ{PQ_M}", "ivf-pq"),
    ]


def settings_for(built: Built) -> list[tuple[str, object]]:
    """Search-time knobs to sweep: efSearch for HNSW, nprobe for IVF, nothing for flat."""
    if isinstance(built.index, faiss.IndexHNSW):
        return [(f"efSearch={ef}", ("efSearch", ef)) for ef in HNSW_EF_SEARCH]
    if "IVF" in built.name:
        nlist = faiss.extract_index_ivf(built.index).nlist
        return [(f"nprobe={p}", ("nprobe", p)) for p in NPROBES if p <= nlist]
    return [("", None)]


def apply(built: Built, knob) -> None:
    if knob is None:
        return
    name, value = knob
    if name == "efSearch":
        built.index.hnsw.efSearch = value
    else:
        faiss.extract_index_ivf(built.index).nprobe = value


def run_size(n: int, mixture: Mixture, max_build_seconds: float, hnsw_estimate: dict, types: list[str]) -> list[list]:
    base = mixture.sample(n, seed=n)
    queries = mixture.sample(QUERIES, seed=7)
    exact = faiss.IndexFlatIP(DIM)
    exact.add(base)
    _, truth = exact.search(queries, K)
    del exact
    print(f"n={n}: random-pair cosine {float(np.mean(base[:1000] @ base[1000:2000].T)):.3f}, "
          f"top-1 neighbour cosine {float(np.mean((queries @ base[truth[:, 0]].T).diagonal())):.3f}", flush=True)
    coarse = Coarse.train(base, ivf_lists(n)) if any(t.startswith("ivf") for t in types) else None
    if coarse:
        print(f"  trained {coarse.quantizer.ntotal} IVF centroids in {coarse.seconds:.1f}s", flush=True)
    rows = []
    for name, factory in [(name, factory) for name, factory in variants(n) if factory in types]:
        if factory == "hnsw" and hnsw_estimate.get(n, 0) > max_build_seconds:
            print(f"  skipped {name} at n={n}: estimated build {hnsw_estimate[n]:.0f}s > {max_build_seconds:.0f}s")
            rows.append([n, name, "skipped", f"~{hnsw_estimate[n]:.0f} (est.)", None, None, None, None])
            continue
        built = build(name, factory, base, coarse)
        print(f"  built {name} in {built.seconds:.1f}s", flush=True)
        if factory == "hnsw":  # HNSW build grows ~ n log n: predict the next sizes from this one
            for bigger in (10 * n, 100 * n):
                hnsw_estimate[bigger] = built.seconds * bigger / n * math.log(bigger) / math.log(n)
        size_mb = faiss.serialize_index(built.index).nbytes / 2**20
        for setting, knob in settings_for(built):
            apply(built, knob)
            rows.append(measure(built, queries, truth, setting, n, size_mb))
        del built
        gc.collect()
    return rows



def run(sizes: list[int], max_build_seconds: float, types: list[str]) -> None:
    mixture = Mixture.create()
    rows, hnsw_estimate = [], {}
    for n in sizes:
        rows += run_size(n, mixture, max_build_seconds, hnsw_estimate, types)
    print(f"\n{machine()}; build on {BUILD_THREADS} FAISS threads, search on 1 thread, "
          f"{QUERIES} single queries per row, k={K}\n")
    print(table(["chunks", "index", "search setting", "build s", "size MB", "p50 ms", "p95 ms",
                 "recall@10"], [[("" if v is None else v) for v in row] for row in rows]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10k and 100k chunks only")
    parser.add_argument("--sizes", type=int, nargs="+", help="index sizes (default 10k 100k 1M)")
    parser.add_argument("--max-build-seconds", type=float, default=1800,
                        help="skip an HNSW build whose estimate (from the previous size) exceeds this")
    parser.add_argument("--types", nargs="+", choices=TYPES, default=list(TYPES), help="index types to build")
    args = parser.parse_args(argv)
    sizes = args.sizes or ([10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000])
    run(sizes, args.max_build_seconds, args.types)


if __name__ == "__main__":
    main()
