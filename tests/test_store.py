"""The store's automatic index type, incremental generations and crash safety, on synthetic vectors.

Real FAISS and SQLite; the vectors are clustered random unit vectors so that an
approximate (IVF) index has structure to exploit, and a tiny ``ivf_threshold``
makes the switch happen with a few hundred chunks.
"""

import fcntl
import json
import os

import faiss
import numpy as np
import pytest

from rag.chunking import Chunk
from rag.corpus import Article
from rag.names import article_vocabulary
from rag.store import (
    FLAT,
    MANIFEST,
    VECTORS,
    IndexCorrupt,
    IndexStore,
    IndexWriter,
    Manifest,
    SentenceVectors,
    StoreError,
    choose_layout,
    live_fingerprints,
    live_generation,
)

DIM = 32
PER_ARTICLE = 5
THRESHOLD = 400
MANIFEST_TEMPLATE = Manifest(
    model="synthetic", model_fingerprint="synthetic-1", dim=DIM, chunk_tokens=220, chunk_overlap=40,
    encoding="o200k_base", parser_version="1",
)


def clustered(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).standard_normal((20, DIM))
    x = centres[rng.integers(0, 20, n)] + rng.standard_normal((n, DIM)) * 0.5
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def article(doc_id: str) -> tuple[Article, list[Chunk]]:
    texts = [f"{doc_id} sentence {i}. Its second." for i in range(PER_ARTICLE)]
    first = len(texts[0]) - len(" Its second.")
    spans = ((0, first), (first + 1, len(texts[0])))
    chunks = [Chunk(doc_id, i, text, 0, 1, 3, doc_id, sentences=spans) for i, text in enumerate(texts)]
    return Article(doc_id, doc_id, " ".join(texts), "en", None, None, f"{doc_id}.txt", f"fp-{doc_id}"), chunks


def add_synthetic(writer: IndexWriter, doc_id: str, vectors: np.ndarray) -> None:
    """Add a synthetic article whose chunks' two sentences have the chunk's vector and its opposite (reversed
    when read alone)."""
    a, chunks = article(doc_id)
    writer.add_article(a, chunks, vectors, [SentenceVectors(list(c.sentences), np.vstack([v, -v]), np.vstack([-v, v]))
                                            for c, v in zip(chunks, vectors)],
                       [(frozenset({f"name:{doc_id}"}), [doc_id, "sentence"]) for _ in chunks],
                       article_vocabulary(a.title, a.text))


class Corpus:
    """What the index should hold: doc id -> its chunks' vectors, kept in step with every write."""

    def __init__(self, folder, threshold=THRESHOLD):
        self.folder = folder
        self.threshold = threshold
        self.vectors: dict[str, np.ndarray] = {}
        self.seed = 0

    def write(self, add: int = 0, remove=(), start_empty=False) -> Manifest:
        self.seed += 1
        new = clustered(add * PER_ARTICLE, self.seed)
        with IndexWriter(self.folder, MANIFEST_TEMPLATE, start_empty=start_empty, ivf_threshold=self.threshold) as w:
            w.remove_articles(remove)
            for doc in remove:
                del self.vectors[doc]
            for i in range(add):
                doc_id = f"doc{self.seed}-{i}"
                vectors = new[i * PER_ARTICLE : (i + 1) * PER_ARTICLE]
                add_synthetic(w, doc_id, vectors)
                self.vectors[doc_id] = vectors
            return w.commit()

    def exact_top(self, store: IndexStore, query: np.ndarray, k: int) -> list[int]:
        """Row ids of the true top k, by brute force over what the index should hold."""
        passages = store.all_passages()
        matrix = np.vstack([self.vectors[p.doc_id][p.position] for p in passages])
        best = np.argsort(-(matrix @ query))[:k]
        return [passages[i].row_id for i in best]


@pytest.fixture()
def corpus(tmp_path):
    return Corpus(tmp_path / "index")


def check_contents(store: IndexStore, corpus: Corpus) -> None:
    """Every expected chunk is stored, with its exact vector, and nothing else."""
    passages = store.all_passages()
    assert {p.doc_id for p in passages} == set(corpus.vectors)
    assert store.vectors.ntotal == len(passages) == store.manifest.chunks
    row_ids = [p.row_id for p in passages]
    expected = np.vstack([corpus.vectors[p.doc_id][p.position] for p in passages])
    np.testing.assert_array_equal(store.vectors_for(row_ids), expected)
    sentences = store.sentence_vectors(row_ids)
    assert set(sentences) == set(row_ids)
    for passage, vector in zip(passages, expected):
        own = sentences[passage.row_id]
        assert own.texts(passage.text) == [f"{passage.doc_id} sentence {passage.position}.", "Its second."]
        np.testing.assert_allclose(own.vectors, np.vstack([vector, -vector]), atol=2e-3)  # stored as float16
        np.testing.assert_allclose(own.alone, np.vstack([-vector, vector]), atol=2e-3)
    # the FAISS index can give a vector back too (retrieval scores lexical-only hits with it)
    np.testing.assert_allclose(store.vectors.reconstruct(row_ids[-1]), expected[-1], atol=1e-6)


def test_layout_follows_size_with_hysteresis():
    assert choose_layout(399, 400) == FLAT
    assert choose_layout(400, 400) == "ivf10"  # never fewer than 39 training points per list
    assert choose_layout(10_000, 400) == "ivf256"
    assert choose_layout(300, 400, current="ivf10") == "ivf10"  # not back to flat until below half
    assert choose_layout(199, 400, current="ivf10") == FLAT
    assert choose_layout(700, 400, current="ivf10") == "ivf10"  # 17 lists would be ideal: not worth a retrain
    assert choose_layout(1600, 400, current="ivf10") == "ivf41"


def test_a_small_index_is_exact(corpus):
    corpus.write(add=20)
    store = IndexStore.open(corpus.folder)
    assert store.manifest.layout == FLAT and isinstance(store.vectors, faiss.IndexIDMap2)
    check_contents(store, corpus)
    query = clustered(1, 1234)[0]
    assert [row for row, _ in store.search(query, 10)] == corpus.exact_top(store, query, 10)


def test_growing_past_the_threshold_switches_to_ivf_without_losing_a_vector(corpus):
    corpus.write(add=60)  # 300 chunks: flat
    assert IndexStore.open(corpus.folder).manifest.layout == FLAT
    manifest = corpus.write(add=40)  # 500 chunks: past the threshold
    assert manifest.layout.startswith("ivf") and manifest.base_generation == manifest.generation
    store = IndexStore.open(corpus.folder)
    assert isinstance(store.vectors, faiss.IndexIVF)
    check_contents(store, corpus)


def test_adding_and_removing_after_the_switch(corpus):
    corpus.write(add=100)
    gone = sorted(corpus.vectors)[:3]
    corpus.write(add=2, remove=gone)
    store = IndexStore.open(corpus.folder)
    assert store.manifest.layout.startswith("ivf")
    check_contents(store, corpus)
    assert not set(gone) & set(store.fingerprints())
    # a new article is found by its own vector, a removed one never comes back
    newest = max(corpus.vectors, key=lambda d: (int(d[3:].split("-")[0]), d))
    [(row_id, score)] = store.search(corpus.vectors[newest][0], 1)
    assert store.passages([row_id])[row_id].doc_id == newest and score == pytest.approx(1.0, abs=1e-5)
    returned = {row for q in clustered(20, 77) for row, _ in store.search(q, 50)}
    assert not {p.doc_id for p in store.passages(returned).values()} & set(gone)


def test_approximate_search_finds_nearly_what_exact_search_finds(corpus):
    corpus.write(add=400)  # 2000 chunks
    store = IndexStore.open(corpus.folder)
    assert store.manifest.layout.startswith("ivf")
    queries = clustered(50, 555)
    recall = np.mean([
        len({row for row, _ in store.search(q, 10)} & set(corpus.exact_top(store, q, 10))) / 10 for q in queries
    ])
    assert recall >= 0.9


def test_a_small_update_shares_the_vector_file_and_reopens_identically(corpus):
    first = corpus.write(add=120)
    before = IndexStore.open(corpus.folder)
    second = corpus.write(add=1, remove=[sorted(corpus.vectors)[0]])  # 2 % of the index changed
    assert second.base_generation == first.generation < second.generation
    assert (live_generation(corpus.folder) / VECTORS).stat().st_nlink == 1  # the old generation is gone
    store = IndexStore.open(corpus.folder)
    check_contents(store, corpus)
    again = IndexStore.open(corpus.folder)
    for q in clustered(10, 9):
        assert store.search(q, 10) == again.search(q, 10)
    # a reader of the previous generation still sees exactly that generation
    assert before.vectors.ntotal == len(before.all_passages()) == first.chunks


def test_a_large_update_rewrites_the_vector_file(corpus):
    corpus.write(add=100)
    manifest = corpus.write(add=10)  # 10 % more than the file holds
    assert manifest.base_generation == manifest.generation and manifest.base_chunks == manifest.chunks
    check_contents(IndexStore.open(corpus.folder), corpus)


def test_shrinking_far_below_the_threshold_returns_to_exact_search(corpus):
    corpus.write(add=100)
    manifest = corpus.write(remove=sorted(corpus.vectors)[:70])  # 150 chunks < threshold / 2
    assert manifest.layout == FLAT
    check_contents(IndexStore.open(corpus.folder), corpus)


def test_adding_an_article_does_not_read_the_others(corpus):
    """Looking the new rows up by (doc_id, added) made SQLite scan every chunk of the generation: filling 100k
    chunks grew with its square (bench/README.md §10).  Counted in SQLite's own steps, not time."""
    steps = []

    def counted(writer: IndexWriter, doc_id: str) -> int:
        steps.clear()
        writer.db.set_progress_handler(lambda: steps.append(1) and 0, 100)
        add_synthetic(writer, doc_id, clustered(PER_ARTICLE, 1))
        writer.db.set_progress_handler(None, 100)
        return len(steps)

    with IndexWriter(corpus.folder, MANIFEST_TEMPLATE, ivf_threshold=THRESHOLD) as writer:
        for i in range(10):
            add_synthetic(writer, f"small-{i}", clustered(PER_ARTICLE, i))
        few = counted(writer, "after-10")
        for i in range(400):
            add_synthetic(writer, f"many-{i}", clustered(PER_ARTICLE, i))
        many = counted(writer, "after-410")
    assert many < 2 * few


def test_a_failed_write_changes_nothing(corpus):
    first = corpus.write(add=100)
    before = live_generation(corpus.folder)
    with pytest.raises(KeyboardInterrupt):
        with IndexWriter(corpus.folder, MANIFEST_TEMPLATE, ivf_threshold=THRESHOLD) as writer:
            writer.remove_articles(sorted(corpus.vectors)[:5])
            add_synthetic(writer, "half-written", clustered(PER_ARTICLE, 3))
            raise KeyboardInterrupt
    assert live_generation(corpus.folder) == before
    assert [p.name for p in corpus.folder.glob("gen-*")] == [before.name]
    store = IndexStore.open(corpus.folder)
    assert store.manifest == first
    check_contents(store, corpus)


def test_rows_committed_but_never_published_stay_invisible_and_are_undone(corpus, monkeypatch):
    """A crash between the SQLite commit and the switch of CURRENT: the worst moment."""
    first = corpus.write(add=100)
    real_replace = os.replace

    def crash(src, dst):
        if str(dst).endswith("CURRENT"):
            raise SystemExit("killed")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash)
    expected = dict(corpus.vectors)
    with pytest.raises(SystemExit):
        corpus.write(add=30, remove=sorted(corpus.vectors)[:10])
    monkeypatch.undo()
    corpus.vectors = expected

    store = IndexStore.open(corpus.folder)
    assert store.manifest == first
    check_contents(store, corpus)  # the committed rows of the unpublished generation are not seen
    corpus.write(add=1)  # the next writer undoes them and reuses the generation number
    store = IndexStore.open(corpus.folder)
    assert store.manifest.generation == first.generation + 1
    check_contents(store, corpus)
    assert len(list(corpus.folder.glob("gen-*"))) == 1


def test_removed_rows_are_dropped_once_no_generation_needs_them(corpus):
    corpus.write(add=100)
    gone = sorted(corpus.vectors)[:20]
    for batch in (gone[:10], gone[10:]):  # each a compaction (10 % of the index)
        corpus.write(remove=batch)
    corpus.write(add=1)
    store = IndexStore.open(corpus.folder)
    stored = {row[0] for row in store.db.execute("SELECT DISTINCT doc_id FROM chunks")}
    assert not set(gone[:10]) & stored  # dropped: neither the live nor the previous generation sees them
    check_contents(store, corpus)


def test_a_rebuild_starts_a_fresh_database_and_deletes_the_old_one(corpus):
    first = corpus.write(add=20)
    corpus.vectors.clear()
    second = corpus.write(add=10, start_empty=True)
    assert second.metadata != first.metadata and second.generation == 1
    assert [p.name for p in corpus.folder.glob("meta-*")] == [second.metadata]
    check_contents(IndexStore.open(corpus.folder), corpus)


def test_an_index_in_the_old_format_asks_for_a_rebuild(corpus):
    corpus.write(add=5)
    manifest_path = live_generation(corpus.folder) / MANIFEST
    data = json.loads(manifest_path.read_text())
    del data["format"]
    manifest_path.write_text(json.dumps(data))
    with pytest.raises(IndexCorrupt, match="rag index --rebuild"):
        IndexStore.open(corpus.folder)


def test_a_writer_that_cannot_start_releases_the_lock(corpus):
    corpus.write(add=5)
    (live_generation(corpus.folder) / MANIFEST).write_text("{not json")
    with pytest.raises(ValueError):
        with IndexWriter(corpus.folder, MANIFEST_TEMPLATE, ivf_threshold=THRESHOLD):
            pass
    with open(corpus.folder / ".lock") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises BlockingIOError if still held
    assert len(list(corpus.folder.glob("gen-*"))) == 1
    corpus.vectors.clear()
    corpus.write(add=3, start_empty=True)  # the way out: a rebuild
    check_contents(IndexStore.open(corpus.folder), corpus)


def test_a_damaged_database_page_found_by_a_later_query_says_what_to_run(corpus):
    """SQLite meets a garbled page only when a query reads it, and its DatabaseError came out of a search or a
    citation as a traceback (python -m bench faults, class corrupt)."""
    corpus.write(add=200)
    store = IndexStore.open(corpus.folder)
    database = corpus.folder / store.manifest.metadata
    raw = bytearray(database.read_bytes())
    half = len(raw) // 2
    raw[half:] = np.random.default_rng(0).integers(0, 256, len(raw) - half, dtype=np.uint8).tobytes()
    database.write_bytes(bytes(raw))
    with pytest.raises(IndexCorrupt, match="is damaged .*; run `rag index --rebuild`"):
        store.all_passages()


def test_garbage_in_the_vector_file_is_found_by_readers_and_by_the_next_update(corpus):
    """FAISS reads any bytes of the right length as vectors: 4 KB of garbage changed every question's top 5,
    and updates said "up to date" (python -m bench faults, class corrupt)."""
    corpus.write(add=20)
    corpus.write(add=1)  # a small update links the file: its checksum goes with it
    IndexStore.open(corpus.folder).close()
    vectors = live_generation(corpus.folder) / VECTORS
    raw = bytearray(vectors.read_bytes())
    raw[len(raw) // 2 : len(raw) // 2 + 4096] = np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    vectors.write_bytes(bytes(raw[: len(vectors.read_bytes())]))
    with pytest.raises(IndexCorrupt, match="damaged .*run `rag index --rebuild`"):
        IndexStore.open(corpus.folder)
    with pytest.raises(IndexCorrupt):
        live_fingerprints(corpus.folder)  # what an update plans with: it rebuilds


@pytest.mark.parametrize("part", ["CURRENT", "database"])
def test_a_folder_in_place_of_a_file_is_cleared_by_the_rebuild(corpus, part):
    """What an unreadable file is to root (chmod 000 does not stop it): the rebuild failed with
    IsADirectoryError while publishing or cleaning up (python -m bench faults, class corrupt)."""
    first = corpus.write(add=5)
    path = corpus.folder / ("CURRENT" if part == "CURRENT" else first.metadata)
    path.unlink()
    path.mkdir()
    with pytest.raises(StoreError, match="rag index"):
        IndexStore.open(corpus.folder)
    corpus.vectors.clear()
    corpus.write(add=3, start_empty=True)
    check_contents(IndexStore.open(corpus.folder), corpus)
    assert not [p for p in corpus.folder.iterdir() if p.is_dir() and not p.name.startswith("gen-")]


def test_re_ranking_takes_a_sentence_read_in_context_or_alone_whichever_is_closer():
    query = np.array([1.0, 0.0], dtype=np.float32)
    in_context = np.array([[0.6, 0.8], [0.0, 1.0]], dtype=np.float32)
    alone = np.array([[0.0, 1.0], [0.96, 0.28]], dtype=np.float32)
    own = SentenceVectors([(0, 5), (6, 10)], in_context, alone)
    assert own.closest(query) == (0, pytest.approx(0.6))  # answers and citations read sentences in context
    assert own.best_score(query) == pytest.approx(0.96)
    assert SentenceVectors([(0, 5), (6, 10)], alone, in_context).best_score(query) == pytest.approx(0.96)
    stored = SentenceVectors.from_bytes(own.spans, own.to_bytes(), 2)
    np.testing.assert_allclose(stored.vectors, in_context, atol=1e-3)
    np.testing.assert_allclose(stored.alone, alone, atol=1e-3)
    with pytest.raises(ValueError, match="2 sentence vectors stored for 2 sentences, not two each"):
        SentenceVectors.from_bytes(own.spans, in_context.astype(np.float16).tobytes(), 2)
