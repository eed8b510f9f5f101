"""Term counts per chunk, kept with an index generation, and the BM25 index computed from them.

bm25s builds its index from token lists: it counts every document's tokens
in Python, which took 17-23 s for 100,000 chunks of 30 tokens on this
project's cores, and every write of the embedded store did it again for the
whole corpus, so adding one article grew with the index (bench/README.md
§10).  A generation therefore keeps each chunk's term counts
(:class:`TermCounts`); the next one takes the removed chunks out and counts
only the added ones, and the BM25 scores, which depend on the whole corpus
(document frequencies, average length), are recomputed from the counts with
array operations, exactly as bm25s computes them (the same float32/float64
steps, so the rankings are bit-for-bit bm25s's; tests/test_bm25.py).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

K1, B = 1.5, 0.75  # bm25s's defaults (its "lucene" method)
ROW_IDS, LANGS = "row_ids.npy", "langs.npy"  # a saved lexical folder: these, bm25s's files, and the counts below
INDPTR, TERMS, COUNTS, VOCABULARY = "tf_indptr.npy", "tf_terms.npy", "tf_counts.npy", "tf_vocabulary.json"


@dataclass(frozen=True)
class TermCounts:
    """Per chunk (row id, language), how often each term occurs: a sparse row per chunk, terms by id."""

    row_ids: np.ndarray  # int64, one per chunk
    langs: np.ndarray  # str, one per chunk
    indptr: np.ndarray  # int64: chunk i's entries are [indptr[i], indptr[i + 1])
    terms: np.ndarray  # int32: term id of each entry
    counts: np.ndarray  # int32: occurrences of that term in that chunk
    vocabulary: tuple[str, ...]  # term of each id

    @classmethod
    def of(cls, row_ids: Iterable[int], langs: Iterable[str], tokens: Iterable[list[str]],
           vocabulary: tuple[str, ...] = ()) -> TermCounts:
        """Count ``tokens`` (one list per chunk; a chunk without tokens gets the empty term, as bm25s has it),
        numbering new terms after ``vocabulary``."""
        ids = {term: i for i, term in enumerate(vocabulary)}
        indptr, terms, counts = [0], [], []
        for chunk_tokens in tokens:
            for term, n in Counter(chunk_tokens or [""]).items():
                terms.append(ids.setdefault(term, len(ids)))
                counts.append(n)
            indptr.append(len(terms))
        return cls(np.asarray(list(row_ids), dtype=np.int64), np.asarray(list(langs), dtype=str),
                   np.asarray(indptr, dtype=np.int64), np.asarray(terms, dtype=np.int32),
                   np.asarray(counts, dtype=np.int32), tuple(ids))

    def without(self, row_ids: Iterable[int]) -> TermCounts:
        """These chunks taken out, and the terms no chunk has left forgotten (a clean count would not have them)."""
        keep = ~np.isin(self.row_ids, np.fromiter(row_ids, dtype=np.int64))
        entries = np.repeat(keep, np.diff(self.indptr))
        terms = self.terms[entries]
        alive = np.bincount(terms, minlength=len(self.vocabulary)) > 0
        renumbered = (np.cumsum(alive) - 1).astype(np.int32)
        return TermCounts(self.row_ids[keep], self.langs[keep],
                          np.concatenate([[0], np.cumsum(np.diff(self.indptr)[keep])]).astype(np.int64),
                          renumbered[terms], self.counts[entries],
                          tuple(term for term, a in zip(self.vocabulary, alive.tolist()) if a))

    def plus(self, row_ids: Iterable[int], langs: Iterable[str], tokens: Iterable[list[str]]) -> TermCounts:
        """These chunks counted in after the others; only their tokens are read."""
        added = TermCounts.of(row_ids, langs, tokens, self.vocabulary)
        return TermCounts(np.concatenate([self.row_ids, added.row_ids]), np.concatenate([self.langs, added.langs]),
                          np.concatenate([self.indptr, added.indptr[1:] + self.indptr[-1]]),
                          np.concatenate([self.terms, added.terms]), np.concatenate([self.counts, added.counts]),
                          added.vocabulary)

    def bm25(self):
        """The bm25s index of these chunks, as ``bm25s.BM25().index(tokens)`` builds it (lucene scoring).

        Each step keeps bm25s's types: idf per term in Python floats stored as
        float32, the length normalisation in float64, the product stored as
        float32.  No chunk at all: one empty document, as the index had before.
        """
        if len(self.indptr) == 1:
            return TermCounts.of([0], [""], [[""]]).bm25()
        import bm25s
        import scipy.sparse as sp

        n_docs = len(self.indptr) - 1
        lengths = np.add.reduceat(self.counts, self.indptr[:-1]).astype(np.int64)  # every chunk has an entry
        frequencies = np.bincount(self.terms, minlength=len(self.vocabulary))
        idf = np.array([math.log(1 + (n_docs - df + 0.5) / (df + 0.5)) if df else 0.0 for df in frequencies.tolist()],
                       dtype=np.float32)
        docs = np.repeat(np.arange(n_docs, dtype=np.int32), np.diff(self.indptr))
        tf = self.counts.astype(np.float32)
        scores = (idf[self.terms] * (tf / (K1 * ((1 - B) + B * lengths[docs] / lengths.mean()) + tf))).astype(np.float32)
        matrix = sp.csc_matrix((scores, (docs, self.terms)), shape=(n_docs, len(self.vocabulary)), dtype="float32")
        model = bm25s.BM25(k1=K1, b=B)
        model.scores = {"data": matrix.data, "indices": matrix.indices, "indptr": matrix.indptr, "num_docs": n_docs}
        model.vocab_dict = {term: i for i, term in enumerate(self.vocabulary)}
        model.vocab_dict.setdefault("", len(self.vocabulary))
        model.unique_token_ids_set = set(model.vocab_dict.values())
        model.nonoccurrence_array = None
        return model

    def save(self, folder: Path) -> None:
        """The BM25 index and the counts it was computed from, in one folder (read by rag.retrieval.LexicalIndex)."""
        self.bm25().save(str(folder), show_progress=False)
        np.save(folder / ROW_IDS, self.row_ids)
        np.save(folder / LANGS, self.langs.astype(str))
        np.save(folder / INDPTR, self.indptr)
        np.save(folder / TERMS, self.terms)
        np.save(folder / COUNTS, self.counts)
        (folder / VOCABULARY).write_text(json.dumps(self.vocabulary, ensure_ascii=False), encoding="utf-8")

    @staticmethod
    def saved_in(folder: Path) -> bool:
        """Whether ``folder`` holds counts (a generation written before them has only the BM25 index)."""
        return (folder / VOCABULARY).is_file()

    @classmethod
    def load(cls, folder: Path) -> TermCounts:
        return cls(np.load(folder / ROW_IDS), np.load(folder / LANGS), np.load(folder / INDPTR),
                   np.load(folder / TERMS), np.load(folder / COUNTS),
                   tuple(json.loads((folder / VOCABULARY).read_text(encoding="utf-8"))))
