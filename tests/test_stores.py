"""One conformance suite for every index backend (the model: Haystack's document-store test mixins).

:class:`StoreConformance` holds the behaviour tests; each backend's test class
inherits it and only says how to get an empty index location.  Real FAISS and
SQLite, a real PostgreSQL with pgvector (tests/conftest.py ``postgres``); the
articles are synthetic (random unit vectors, real lexical tokens and names).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from rag.filters import SearchFilters
from rag.names import NameVocabulary, article_vocabulary
from rag.retrieval import LanguageCentroids
from rag.stores import backend_for, open_store

from .conftest import ROOT
from .store_corpus import DIM, IVF_THRESHOLD, MANIFEST, synthetic, with_text, write

# articles with every filterable field varied, and one without a date or a source
SAMPLE = [
    dict(doc_id="vi-1", lang="vi", date="2017-03-01", source="baomoi.com"),
    dict(doc_id="vi-2", lang="vi", date="2017-07-15T08:30:00", source="baomoi.com"),
    dict(doc_id="id-1", lang="id", date="2025-06-01", source="kompas.com"),
    dict(doc_id="id-2", lang="id", date="2025-07-15", source="detik.com"),
    dict(doc_id="ms-1", lang="ms", date="2022-01-01", source="majoriti.com.my"),
    dict(doc_id="en-1", lang="en", date=None, source=None),
]
FILTERS = [
    SearchFilters.of(languages="id"),
    SearchFilters.of(languages=["vi", "ms"]),
    SearchFilters.of(since="2025-06-01"),
    SearchFilters.of(until="2017-07-15"),
    SearchFilters.of(since="2022-01-01", until="2025-06-30"),
    SearchFilters.of(sources="Kompas.com"),
    SearchFilters.of(sources="baomoi.com,detik.com"),
    SearchFilters.of(article_ids="ms-1,en-1"),
    SearchFilters.of(languages="id", since="2025-07-01", sources="detik.com,kompas.com"),
    SearchFilters.of(languages="en", since="2020-01-01"),  # its only article has no date: nothing passes
]


def admitted(filters: SearchFilters) -> set[str]:
    """The reference: the sample articles :meth:`SearchFilters.admits` lets through."""
    return {a["doc_id"] for a in SAMPLE
            if filters.admits(lang=a["lang"], date=a["date"], source=a["source"], doc_id=a["doc_id"])}


def named(*doc_ids: str) -> str:
    """A question naming the marker words of these synthetic articles (``Wvi1``: lexical search finds them)."""
    return "Find " + " ".join("W" + doc_id.replace("-", "") for doc_id in doc_ids)


def unit(vector: np.ndarray) -> np.ndarray:
    return (vector / np.linalg.norm(vector)).astype(np.float32)


class StoreConformance:
    """Behaviour every backend must have.  Subclasses provide the ``location`` fixture: an empty index."""

    @pytest.fixture()
    def sample(self, location):
        items = [synthetic(**fields) for fields in SAMPLE]
        write(location, items)
        return items

    # ------------------------------------------------------------ add, change, remove

    def test_an_empty_location_has_no_index(self, location):
        assert not backend_for(location).exists()

    def test_added_articles_are_read_back_whole(self, location, sample):
        store = open_store(location)
        assert store.manifest.articles == len(SAMPLE) and store.manifest.chunks == 2 * len(SAMPLE)
        assert [a.doc_id for a in store.articles()] == sorted(a["doc_id"] for a in SAMPLE)
        assert [a.doc_id for a in store.articles(offset=2, limit=2)] == sorted(a["doc_id"] for a in SAMPLE)[2:4]
        assert store.fingerprints() == {item.article.doc_id: item.article.fingerprint for item in sample}
        first = sample[2]
        assert store.article("id-1") == first.article
        rows = store.chunk_rows(["id-1"])
        passages = store.passages(rows)
        assert [passages[r].text for r in rows] == [c.text for c in first.chunks]
        assert {(p.lang, p.source, p.date, p.title) for p in passages.values()} == {
            ("id", "kompas.com", "2025-06-01", "Title of id-1")}
        np.testing.assert_allclose(store.vectors_for(rows), first.vectors, atol=1e-6)
        sentences = store.sentence_vectors(rows)
        np.testing.assert_allclose(sentences[rows[0]].vectors, np.vstack([first.vectors[0], -first.vectors[0]]),
                                   atol=2e-3)  # float16
        np.testing.assert_allclose(sentences[rows[0]].alone, np.vstack([-first.vectors[0], first.vectors[0]]),
                                   atol=2e-3)
        assert sentences[rows[0]].texts(first.chunks[0].text)[0].startswith("Wid1")

    def test_search_finds_the_nearest_chunk(self, location, sample):
        store = open_store(location)
        target = sample[4]
        [(row_id, score), *_] = store.search(target.vectors[1], 3)
        assert store.passages([row_id])[row_id].chunk_id == "ms-1#1" and score == pytest.approx(1.0, abs=1e-4)

    def test_a_changed_article_replaces_the_old_version(self, location, sample):
        changed = synthetic("id-1", lang="id", date="2025-06-01", source="kompas.com", chunks=3, version=1)
        write(location, [changed], remove=["id-1"])
        store = open_store(location)
        assert store.fingerprints()["id-1"] == changed.article.fingerprint
        rows = store.chunk_rows(["id-1"])
        assert len(rows) == 3 and store.manifest.chunks == 2 * len(SAMPLE) + 1
        np.testing.assert_allclose(store.vectors_for(rows), changed.vectors, atol=1e-6)
        [(best, score)] = store.search(sample[2].vectors[0], 1, SearchFilters.of(article_ids="id-1"))
        assert best in rows and score < 0.99  # the old vector is gone

    def test_removed_articles_are_gone_everywhere(self, location, sample):
        write(location, remove=["vi-1", "en-1"])
        store = open_store(location)
        assert set(store.fingerprints()) == {a["doc_id"] for a in SAMPLE} - {"vi-1", "en-1"}
        assert store.article("vi-1") is None and store.chunk_rows(["vi-1"]) == []
        hits = store.search(sample[0].vectors[0], 100)
        assert len(hits) == store.manifest.chunks == 8
        assert "vi-1" not in {p.doc_id for p in store.passages(r for r, _ in hits).values()}
        assert store.lexical_search(named("vi-1"), 10) == ([], [])
        assert store.lexical_search(named("vi-2"), 10)[0]

    def test_reopening_reads_the_same_index(self, location, sample):
        store = open_store(location)
        query = unit(np.ones(DIM))
        before = (store.search(query, 5), store.fingerprints(), store.manifest)
        store.close()
        again = open_store(location)
        assert (again.search(query, 5), again.fingerprints(), again.manifest) == before

    def test_a_reader_keeps_its_version_while_an_update_is_published(self, location, sample):
        reader = open_store(location)
        rows = reader.chunk_rows(["vi-1"])
        write(location, [synthetic("new-1")], remove=["vi-1"])
        assert not reader.is_current()
        assert set(reader.fingerprints()) == {a["doc_id"] for a in SAMPLE}
        assert {p.doc_id for p in reader.passages(rows).values()} == {"vi-1"}
        assert len(reader.search(unit(np.ones(DIM)), 100)) == 2 * len(SAMPLE)
        fresh = open_store(location)
        assert fresh.is_current() and "new-1" in fresh.fingerprints() and "vi-1" not in fresh.fingerprints()

    # ------------------------------------------------------------ filters

    @pytest.mark.parametrize("filters", FILTERS, ids=str)
    def test_filters_admit_what_the_reference_admits(self, location, sample, filters):
        store = open_store(location)
        expected = admitted(filters)
        hits = store.search(unit(np.ones(DIM)), 100, filters)
        assert {p.doc_id for p in store.passages(r for r, _ in hits).values()} == expected
        assert len(hits) == 2 * len(expected)
        by_names, _ = store.lexical_search(named(*(a["doc_id"] for a in SAMPLE)), 100, filters)
        assert {p.doc_id for p in store.passages(r for r, _ in by_names).values()} == expected

    def test_lexical_search_by_all_words_keeps_to_the_question_language(self, location):
        write(location, [synthetic("vi-a", lang="vi", words="hợp tác đầu tư"),
                         synthetic("id-a", lang="id", words="kerja sama investasi")])
        store = open_store(location)
        by_names, by_words = store.lexical_search("Hợp tác đầu tư giữa hai tỉnh là gì?", 10)
        assert {store.passages([r])[r].doc_id for r, _ in by_words} == {"vi-a"}
        assert all(score > 0 for _, score in by_words)
        assert store.lexical_search("Hợp tác đầu tư giữa hai tỉnh là gì?", 10, SearchFilters.of(languages="id"))[1] == []

    def test_a_selective_filter_still_returns_k(self, location):
        crowd = [synthetic(f"crowd-{i}", lang="vi", source="baomoi.com", chunks=4) for i in range(60)]
        rare = [synthetic(f"rare-{i}", lang="ms", source="majoriti.com.my", chunks=2) for i in range(3)]
        write(location, crowd + rare)
        store = open_store(location)
        query = crowd[0].vectors[0]  # the crowd is nearest: the rare chunks are far down the full ranking
        hits = store.search(query, 5, SearchFilters.of(sources="majoriti.com.my"))
        assert len(hits) == 5 and {store.passages([r])[r].doc_id for r, _ in hits} <= {f"rare-{i}" for i in range(3)}
        exact = sorted(((float(v @ query), f"{item.article.doc_id}#{i}") for item in rare
                        for i, v in enumerate(item.vectors)), reverse=True)[:5]
        assert [store.passages([r])[r].chunk_id for r, _ in hits] == [chunk_id for _, chunk_id in exact]
        assert [s for _, s in hits] == pytest.approx([s for s, _ in exact], abs=1e-5)

    def test_names_are_counted_and_filtered_per_article(self, location):
        write(location, [synthetic("a", lang="vi", words="Daejeon Busan"), synthetic("b", lang="id", words="Daejeon"),
                         synthetic("c", lang="id", words="Yamanashi")])
        store = open_store(location)
        keys = {key for row in store.chunk_rows(["a"]) for key in _keys_of(store, row)}
        assert keys, "the synthetic article names Daejeon and Busan"
        spread = store.name_spread(keys)
        assert max(spread.values()) == 2 and min(spread.values()) == 1
        named = store.names_in_articles(keys)
        assert set(named) == {"a", "b"} and named["a"] == keys
        assert set(store.names_in_articles(keys, filters=SearchFilters.of(languages="id"))) == {"b"}
        assert set(store.names_in_articles(keys, doc_ids=["a", "c"])) == {"a"}

    # ------------------------------------------------------------ the name vocabulary

    @pytest.fixture()
    def vocabulary(self, location):
        write(location, [with_text(doc_id, text) for doc_id, text in NAMED.items()])
        return NameVocabulary(open_store(location))

    def test_the_vocabulary_knows_whole_phrases_across_spellings(self, vocabulary):
        assert vocabulary.knows("Thanh Hoa")  # diacritics folded
        assert vocabulary.knows("Bac Kan")
        assert vocabulary.knows("TPHCM")  # alias of Ho Chi Minh
        assert vocabulary.knows("Sama Dengan") and not vocabulary.knows("Dengan Sama")  # the words in a row
        assert not vocabulary.knows("Hai Phong")  # "Hải" is only part of a person's name here
        assert not vocabulary.knows("Incheon")

    def test_the_vocabulary_knows_a_translated_phrase_through_a_longer_name_word(self, vocabulary):
        assert vocabulary.knows("Hanoi Union")  # the articles name the union in other languages
        assert not vocabulary.knows("Hai Union")  # "Hải" is a name word here, but too short to vouch for a phrase

    def test_unknown_names(self, vocabulary):
        assert vocabulary.unknown_names("Kapan Hai Phong menandatangani perjanjian dengan Incheon?") == (2, 2)
        assert vocabulary.unknown_names("What did Thanh Hoa sign with Busan?") == (1, 2)
        assert vocabulary.unknown_names("what did they sign?") == (0, 0)

    def test_articles_naming_the_names_of_a_question(self, vocabulary):
        assert vocabulary.articles_naming("Siapa Wali Kota Seongnam?") == {"seongnam"}  # title words are not names
        assert vocabulary.articles_naming("Did Ho Chi Minh City sign with Yamanashi?") == set()  # none names both
        assert vocabulary.articles_naming("What did Thanh Hoa sign?") is None  # in most articles: picks none out
        assert vocabulary.articles_naming("What did Busan sign?") is None  # unknown names pick nothing out either

    def test_mention_none(self, vocabulary):
        assert vocabulary.mention_none("Siapa Wali Kota Ho Chi Minh?", ["seongnam"])
        assert not vocabulary.mention_none("Siapa Wali Kota Seongnam?", ["seongnam"])
        assert not vocabulary.mention_none("Who is the mayor?", ["seongnam"])  # no names: nothing to miss

    def test_the_vocabulary_updated_article_by_article_is_that_of_a_clean_build(self, location, vocabulary):
        """Adds, a change and a removal, each its own generation, against one build of the final articles."""
        changed = with_text("seongnam", "Wali Kota Daejeon Lee Jang Woo berkunjung ke Incheon.", version=1)
        added = with_text("hai-phong", "Thành phố Hải Phòng ký kết với Incheon. Ông Shin Sang Jin phát biểu.")
        write(location, [added])
        write(location, [changed], remove=["seongnam"])
        write(location, remove=["bac-kan"])
        final = [with_text("yamanashi", NAMED["yamanashi"]), changed, added]
        updated = answers(open_store(location))
        write(location, final, start_empty=True)
        assert answers(open_store(location)) == updated
        [thanh_hoa] = article_vocabulary("", "Thanh Hoa").tokens
        assert updated["spread"][thanh_hoa] == (1, 1) and updated["spread"]["woo"] == (1, 1)  # the change landed
        assert not updated["knows"]["Bac Kan"] and updated["knows"]["Hai Phong"]

    def test_recomputed_names_and_vocabularies_replace_the_old_ones(self, location, sample):
        """What a new names version does (rag.indexing): every chunk's and article's derived text, rewritten."""
        with backend_for(location).writer(MANIFEST, start_empty=False, ivf_threshold=IVF_THRESHOLD) as writer:
            writer.replace_derived_text(((p.row_id, frozenset({"name:zeta"}), ["zeta"]) for p in writer.passages()),
                                        ((a.doc_id, article_vocabulary("", "Zeta Omega")) for a in writer.articles()))
            writer.commit()
        store = open_store(location)
        assert store.name_spread(["name:zeta"]) == {"name:zeta": len(SAMPLE)}
        assert len(store.lexical_search("Find Zeta", 100)[0]) == 2 * len(SAMPLE)
        assert store.lexical_search(named("vi-1"), 10)[0] == []  # the old tokens are gone
        n = len(SAMPLE)  # every article, its text "Zeta Omega" (the first word is no name phrase)
        assert store.word_spread(["zeta", "omega", "wvi1"]) == {"zeta": (n, 0), "omega": (n, n)}

    # ------------------------------------------------------------ corpus statistics

    def test_the_stored_centroids_are_those_of_the_vectors(self, location, sample):
        write(location, [synthetic("id-3", lang="id")], remove=["ms-1"])  # incrementally updated
        store = open_store(location)
        passages = store.all_passages()
        computed = LanguageCentroids(passages, store.vectors_for(p.row_id for p in passages))
        stored = store.centroids()
        query = unit(np.arange(DIM, dtype=np.float32))
        langs = ["vi", "id", "ms", "en"]
        np.testing.assert_allclose(stored.offsets(query, langs), computed.offsets(query, langs), atol=1e-5)
        for lang in langs:
            assert stored.own_language_pull(query, lang) == pytest.approx(computed.own_language_pull(query, lang),
                                                                          abs=1e-5)

    def test_the_statistics_updated_article_by_article_are_those_of_a_clean_build(self, location, sample):
        """Adds, a change and removals (one taking a language's last article), each its own generation, against one
        build of the final articles: the centroids and BM25 follow the updates, not only the first build."""
        changed = synthetic("id-1", lang="id", date="2025-06-01", source="kompas.com", chunks=3, version=1,
                            words="Seongnam")
        added = [synthetic("vi-3", lang="vi", words="Seongnam Daejeon"), synthetic("th-1", lang="th")]
        write(location, added)
        write(location, [changed], remove=["id-1"])
        write(location, remove=["ms-1", "vi-2"])
        final = [item for item in sample if item.article.doc_id not in {"id-1", "ms-1", "vi-2"}] + [changed, *added]
        updated = statistics(open_store(location))
        write(location, final, start_empty=True)
        clean = statistics(open_store(location))
        assert set(updated["own"]) == {"vi", "id", "en", "th"}  # ms is gone
        assert_same_statistics(updated, clean)

    # ------------------------------------------------------------ crashes and concurrency

    def test_a_writer_killed_mid_update_leaves_the_old_index(self, location, sample):
        writer = start_writer(location, "killed-1", "--hang")
        assert writer.stdout.readline().strip() == "ready"
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=30)
        store = open_store(location)
        assert "killed-1" not in store.fingerprints() and store.manifest.chunks == 2 * len(SAMPLE)
        assert store.lexical_search(named("killed-1"), 5)[0] == []
        write(location, [synthetic("after-1")])  # the next writer is not blocked nor confused by the dead one
        assert set(open_store(location).fingerprints()) == {a["doc_id"] for a in SAMPLE} | {"after-1"}

    def test_two_writers_at_once_both_land(self, location, sample):
        first = start_writer(location, "first-1", "--pause")
        assert first.stdout.readline().strip() == "ready"
        second = start_writer(location, "second-1")
        for process in (first, second):
            out, err = process.communicate(timeout=120)
            assert process.returncode == 0, err
        store = open_store(location)
        assert {"first-1", "second-1"} <= set(store.fingerprints())
        assert store.manifest.articles == len(SAMPLE) + 2 and store.manifest.chunks == 2 * (len(SAMPLE) + 2)
        assert len(store.search(unit(np.ones(DIM)), 100)) == store.manifest.chunks


# the articles of the name vocabulary's tests: accents, aliases and titles as news writes them
NAMED = {
    "yamanashi": "Tỉnh Thanh Hóa và tỉnh Yamanashi ký kết hợp tác. Ông Nguyễn Quang Hải phát biểu.",
    "bac-kan": "Cadangan timbal di Bắc Kạn terbesar. Kota Ho Chi Minh bekerja sama dengan Hanoi.",
    "seongnam": "Wali Kota Seongnam Shin Sang Jin berkunjung ke Thanh Hoa.",
}
PROBES = ["Thanh Hoa", "Bac Kan", "TPHCM", "Shin Sang Jin", "Hai Phong", "Incheon", "Hanoi Union", "Lee Jang Woo",
          "Seongnam", "Daejeon", "Yamanashi"]


def answers(store) -> dict:
    """Everything the vocabulary of ``store`` says about the probes and the words of the test articles."""
    vocabulary = NameVocabulary(store)
    words = {w for text in [*NAMED.values(), "Lee Jang Woo Daejeon Incheon Hải Phòng"]
             for w in article_vocabulary("", text).words}
    questions = [f"Who met {a} and {b}?" for a in PROBES for b in PROBES if a < b]
    return {"spread": store.word_spread(words), "knows": {p: vocabulary.knows(p) for p in PROBES},
            "naming": {q: vocabulary.articles_naming(q) for q in questions},
            "in": store.articles_with_words(words)}


def _keys_of(store, row_id: int) -> set[str]:
    """The name keys a chunk was stored with (recomputed the way indexing computes them)."""
    from rag.indexing import derived_text

    passage = store.passages([row_id])[row_id]
    return set(derived_text(passage.title, passage.text)[0])


def statistics(store) -> dict:
    """What the corpus statistics give a few questions: per language its pull and own-language pull on a query, and
    the lexical rankings by chunk id (row ids differ between builds) with their scores, fewer than k, so ties are
    all in."""
    query = unit(np.arange(DIM, dtype=np.float32) - DIM / 3)
    langs = ["vi", "id", "ms", "en", "th"]
    centroids = store.centroids()
    chunk_id = {p.row_id: p.chunk_id for p in store.all_passages()}
    lexical = [[sorted(((chunk_id[row], round(score, 5)) for row, score in ranking), key=lambda hit: (-hit[1], hit[0]))
                for ranking in store.lexical_search(q, 10)]  # in ties, by chunk id
               for q in ("Find Seongnam Wvi3", "Seongnam Daejeon version part", named("id-1", "en-1"))]
    return {"offsets": dict(zip(langs, centroids.offsets(query, langs).tolist())),
            "own": {lang: centroids.own_language_pull(query, lang) for lang in langs if lang in centroids.own},
            "lexical": lexical}


def assert_same_statistics(updated: dict, clean: dict) -> None:
    assert set(updated["own"]) == set(clean["own"])
    for key in ("offsets", "own"):
        assert updated[key] == pytest.approx(clean[key], abs=1e-6)
    assert updated["lexical"] == clean["lexical"]


def start_writer(location, doc_id: str, *flags: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "tests.store_corpus", str(location), "add", doc_id, *flags],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class TestEmbeddedStore(StoreConformance):
    @pytest.fixture()
    def location(self, tmp_path):
        return tmp_path / "index"

    def test_an_update_reads_only_the_changed_chunks(self, location, sample, monkeypatch):
        """BM25 and the centroids from every chunk made adding one article to 100k chunks take seconds
        (bench/README.md §10): an update counts its added and removed chunks only, and lands where a clean build
        of the same articles does."""
        from rag.stores.embedded import EmbeddedWriter

        def whole_index(*args, **kwargs):
            raise AssertionError("the update read every chunk")

        tokens = EmbeddedWriter.lexical_tokens
        monkeypatch.setattr(EmbeddedWriter, "passages", whole_index)
        monkeypatch.setattr(EmbeddedWriter, "vectors", whole_index)
        monkeypatch.setattr(EmbeddedWriter, "lexical_tokens",
                            lambda self, change=None: tokens(self, change) if change else whole_index())
        changed = synthetic("id-1", lang="id", chunks=3, version=1, words="Seongnam")
        write(location, [synthetic("vi-3", lang="vi", words="Seongnam Daejeon"), changed], remove=["id-1", "ms-1"])
        monkeypatch.undo()
        updated = statistics(open_store(location))
        final = [item for item in sample if item.article.doc_id not in {"id-1", "ms-1"}]
        write(location, [*final, synthetic("vi-3", lang="vi", words="Seongnam Daejeon"), changed], start_empty=True)
        assert_same_statistics(updated, statistics(open_store(location)))


class TestPostgresStore(StoreConformance):
    @pytest.fixture()
    def location(self, postgres_database):
        return postgres_database
