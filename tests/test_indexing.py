"""Incremental updates and crash safety, with the real model and real FAISS."""

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from rag.indexing import update_index
from rag.store import IndexCorrupt, IndexStore, live_generation

from .conftest import ROOT

NEW_ARTICLE = (
    "Tỉnh Quảng Nam và thành phố Busan ký biên bản ghi nhớ hợp tác về cảng biển.\n\n"
    "Theo biên bản, hai bên sẽ trao đổi kinh nghiệm quản lý cảng biển Chu Lai và đào tạo 120 kỹ sư logistics "
    "trong giai đoạn 2026-2028.\nSumber: https://example.org/quang-nam-busan\n"
)


@pytest.fixture()
def built(make_settings, corpus_copy, tmp_path, embedder):
    settings = make_settings(corpus_copy, tmp_path / "index")
    report = update_index(settings, embedder, progress=False)
    return settings, report


def open_store(settings):
    return IndexStore.open(settings.index)


def test_first_build_indexes_every_article(built):
    settings, report = built
    assert len(report.added) == 5 and report.rebuilt
    store = open_store(settings)
    assert store.vectors.ntotal == report.total_chunks == report.embedded_chunks > 5
    assert store.manifest.articles == 5 and store.manifest.dim == 384
    assert set(store.fingerprints()) == set(report.added)


def test_an_unchanged_corpus_embeds_nothing(built, embedder):
    settings, _ = built
    generation = live_generation(settings.index)
    report = update_index(settings, embedder, progress=False)
    assert (report.unchanged, report.embedded_chunks, report.changed_anything) == (5, 0, False)
    assert live_generation(settings.index) == generation


def test_added_changed_and_removed_articles_are_applied(built, embedder):
    settings, first = built
    corpus = settings.corpus
    (corpus / "005_quang_nam_busan.txt").write_text(NEW_ARTICLE, encoding="utf-8")
    changed = corpus / "003_6c45966e1ec7bc90.txt"
    changed.write_text(changed.read_text(encoding="utf-8") + "\nHai bên cũng thống nhất mở đường bay thẳng.\n")
    (corpus / "004_780ad07ab89a6347.txt").unlink()

    report = update_index(settings, embedder, progress=False)
    assert report.added == ["005_quang_nam_busan"]
    assert report.changed == ["003_6c45966e1ec7bc90"]
    assert report.removed == ["004_780ad07ab89a6347"]
    assert report.unchanged == 3

    store = open_store(settings)
    stored = store.all_passages()
    per_doc = {doc: sum(p.doc_id == doc for p in stored) for doc in ("005_quang_nam_busan", "003_6c45966e1ec7bc90")}
    assert report.embedded_chunks == sum(per_doc.values())  # only what changed was embedded
    assert not any(p.doc_id == "004_780ad07ab89a6347" for p in stored)
    assert store.vectors.ntotal == len(stored) == report.total_chunks
    assert store.article("005_quang_nam_busan").url == "https://example.org/quang-nam-busan"
    # the new article is searchable, by its vector
    [(row_id, _)] = store.search(embedder.embed_query("Quảng Nam hợp tác với Busan về cảng biển"), 1)
    assert store.passages([row_id])[row_id].doc_id == "005_quang_nam_busan"


def test_a_file_that_turns_bad_keeps_its_indexed_version(built, embedder):
    settings, _ = built
    (settings.corpus / "002_c12aae596eddc73b.txt").write_bytes(b"\x00\x01\x02binary" * 50)
    report = update_index(settings, embedder, progress=False)
    assert report.removed == [] and report.changed == []
    assert any("002_c12aae596eddc73b.txt: binary file" in error for error in report.errors)
    assert "002_c12aae596eddc73b" in open_store(settings).fingerprints()


def test_an_enormous_article_is_indexed_up_to_max_article_chunks_with_a_warning(make_settings, corpus_copy,
                                                                                   tmp_path, embedder):
    """One line of words without punctuation became passage after passage, with no warning (a 2 MB line took
    282 s and 1.96 GB; python -m bench faults, class articles)."""
    (corpus_copy / "blob.txt").write_text("kata " * 3000, encoding="utf-8")
    settings = make_settings(corpus_copy, tmp_path / "index", max_article_chunks=3)
    report = update_index(settings, embedder, progress=False)
    assert "blob" in report.added
    [warning] = [error for error in report.errors if "blob.txt" in error]
    assert "only the first 3 are indexed (max_article_chunks)" in warning
    assert len(open_store(settings).chunk_rows(["blob"])) == 3


def test_an_interrupted_update_leaves_the_previous_index(built, embedder, monkeypatch):
    settings, first = built
    before = live_generation(settings.index)
    (settings.corpus / "005_quang_nam_busan.txt").write_text(NEW_ARTICLE, encoding="utf-8")
    (settings.corpus / "000_4c94815e66c1bf8a.txt").unlink()

    from rag import store as store_module

    def interrupted(self, *args):
        raise KeyboardInterrupt

    monkeypatch.setattr(store_module.IndexWriter, "add_article", interrupted)
    with pytest.raises(KeyboardInterrupt):
        update_index(settings, embedder, progress=False)
    monkeypatch.undo()

    assert live_generation(settings.index) == before
    assert [p.name for p in settings.index.glob("gen-*")] == [before.name]
    store = open_store(settings)
    assert "000_4c94815e66c1bf8a" in store.fingerprints()
    assert store.vectors.ntotal == first.total_chunks
    # and the next run applies the change
    report = update_index(settings, embedder, progress=False)
    assert (report.added, report.removed) == (["005_quang_nam_busan"], ["000_4c94815e66c1bf8a"])


CRASHING_UPDATE = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from rag.config import load_settings
    from rag.indexing import update_index

    real_replace = os.replace
    def crash_before_publishing(src, dst):
        if str(dst).endswith("CURRENT"):
            os.kill(os.getpid(), signal.SIGKILL)  # the worst moment: everything written, nothing published
        return real_replace(src, dst)
    os.replace = crash_before_publishing
    corpus, index, cache = map(Path, sys.argv[1:4])
    update_index(load_settings(corpus=corpus, index=index, model_cache=cache), progress=False)
    """
)


def test_a_killed_process_leaves_the_previous_index_usable(built, embedder, cache_dir):
    settings, first = built
    before = live_generation(settings.index)
    (settings.corpus / "005_quang_nam_busan.txt").write_text(NEW_ARTICLE, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-c", CRASHING_UPDATE, str(settings.corpus), str(settings.index), str(cache_dir / "models")],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=300,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()[-2000:]
    assert live_generation(settings.index) == before
    store = open_store(settings)
    assert store.vectors.ntotal == first.total_chunks
    assert "005_quang_nam_busan" not in store.fingerprints()
    # the half-written generation is cleaned up by the next successful run
    report = update_index(settings, embedder, progress=False)
    assert report.added == ["005_quang_nam_busan"]
    assert len(list(settings.index.glob("gen-*"))) == 1


def test_a_corrupt_index_is_reported_then_rebuilt(built, embedder):
    settings, first = built
    (live_generation(settings.index) / "vectors.faiss").write_bytes(b"garbage")
    with pytest.raises(IndexCorrupt, match="rag index --rebuild"):
        open_store(settings)
    report = update_index(settings, embedder, progress=False)
    assert report.rebuilt and report.total_chunks == first.total_chunks
    assert open_store(settings).vectors.ntotal == first.total_chunks


def test_a_missing_live_generation_means_no_index(built):
    settings, _ = built
    shutil.rmtree(live_generation(settings.index))
    from rag.store import IndexMissing

    with pytest.raises(IndexMissing, match="rag index"):
        open_store(settings)


def test_changed_chunking_parameters_force_a_rebuild(built, embedder, make_settings):
    settings, first = built
    smaller = make_settings(settings.corpus, settings.index, chunk_tokens=120)
    report = update_index(smaller, embedder, progress=False)
    assert report.rebuilt and len(report.added) == 5
    assert report.total_chunks > first.total_chunks
    assert open_store(smaller).manifest.chunk_tokens == 120



def test_growing_past_the_threshold_switches_to_ivf_without_re_embedding(built, embedder, make_settings):
    """With the real model: the switch rebuilds FAISS from the stored vectors, and the index stays incremental."""
    settings, first = built
    assert open_store(settings).manifest.layout == "flat"
    lower = make_settings(settings.corpus, settings.index, ivf_threshold=first.total_chunks + 1)
    (settings.corpus / "005_quang_nam_busan.txt").write_text(NEW_ARTICLE, encoding="utf-8")
    report = update_index(lower, embedder, progress=False)
    store = open_store(lower)
    assert store.manifest.layout.startswith("ivf") and store.vectors.ntotal == report.total_chunks
    assert report.embedded_chunks == report.total_chunks - first.total_chunks  # only the new article
    [(row_id, _)] = store.search(embedder.embed_query("Quảng Nam hợp tác với Busan về cảng biển"), 1)
    assert store.passages([row_id])[row_id].doc_id == "005_quang_nam_busan"
    question = embedder.embed_query("What did Thanh Hoa agree with Yamanashi?")
    top = store.passages(row for row, _ in store.search(question, 3))
    assert "002_c12aae596eddc73b" in {p.doc_id for p in top.values()}

    (settings.corpus / "004_780ad07ab89a6347.txt").unlink()
    report = update_index(lower, embedder, progress=False)
    assert report.removed == ["004_780ad07ab89a6347"] and report.embedded_chunks == 0
    store = open_store(lower)
    assert store.manifest.layout.startswith("ivf") and store.vectors.ntotal == report.total_chunks
    found = store.passages(row for row, _ in store.search(embedder.embed_query("Hoa Lac investment projects"), 50))
    assert found and "004_780ad07ab89a6347" not in {p.doc_id for p in found.values()}


SECOND_ARTICLE = (
    "Kota Da Nang dan Prefektur Okayama menandatangani nota kesepahaman kerja sama pendidikan.\n\n"
    "Kedua pihak akan bertukar 40 guru dan membuka program beasiswa bagi mahasiswa teknik mulai 2027.\n"
)
INDEX_COMMAND = "from rag.cli import main; main()"


def test_concurrent_writers_index_each_new_article_once(built, cache_dir):
    """Two `rag index` processes after two articles were added: each article once, the same as a clean build."""
    settings, first = built
    (settings.corpus / "005_quang_nam_busan.txt").write_text(NEW_ARTICLE, encoding="utf-8")
    (settings.corpus / "006_da_nang_okayama.txt").write_text(SECOND_ARTICLE, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAG_MODEL_CACHE": str(cache_dir / "models")}
    command = [sys.executable, "-c", INDEX_COMMAND, "index", "--corpus", str(settings.corpus),
               "--index", str(settings.index)]
    writers = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for _ in range(2)]
    outputs = [writer.communicate(timeout=600) for writer in writers]
    assert [writer.returncode for writer in writers] == [0, 0], [err.decode()[-2000:] for _, err in outputs]
    store = open_store(settings)
    rows = store.db.execute("SELECT doc_id, position FROM chunks WHERE added <= :g AND (removed IS NULL OR "
                            "removed > :g)", {"g": store.manifest.generation}).fetchall()
    assert len(rows) == len(set(rows)) == store.vectors.ntotal  # no chunk twice
    assert set(store.fingerprints()) == set(first.added) | {"005_quang_nam_busan", "006_da_nang_okayama"}
    assert store.manifest.articles == 7


def test_garbage_in_current_is_reported_then_rebuilt(built, embedder):
    settings, first = built
    (settings.index / "CURRENT").write_bytes(os.urandom(64) + b"\xff\xfe")
    with pytest.raises(IndexCorrupt, match="rag index --rebuild"):
        open_store(settings)
    report = update_index(settings, embedder, progress=False)
    assert report.rebuilt and report.total_chunks == first.total_chunks
    assert open_store(settings).vectors.ntotal == first.total_chunks


def test_an_index_folder_that_cannot_be_written_still_answers(built, embedder):
    """A read-only deployment: the corpus changed, the index cannot be updated, the old index keeps serving."""
    settings, first = built
    (settings.index / ".lock").unlink(missing_ok=True)
    (settings.index / ".lock").mkdir()  # the lock file cannot be opened for writing, as on a read-only mount
    (settings.corpus / "005_quang_nam_busan.txt").write_text(NEW_ARTICLE, encoding="utf-8")
    report = update_index(settings, embedder, progress=False)
    assert not report.changed_anything and report.total_chunks == first.total_chunks
    assert any("not writable" in error for error in report.errors)
    assert open_store(settings).vectors.ntotal == first.total_chunks


def test_each_chunk_is_stored_with_the_names_of_its_text_and_title(built):
    from rag.names import name_keys

    store = open_store(built[0])
    passages = store.all_passages()
    stored = dict(store.db.execute("SELECT chunk_id, group_concat(key, '|') FROM chunk_names GROUP BY chunk_id"))
    for p in passages:
        assert set(stored.get(p.row_id, "").split("|")) - {""} == name_keys(f"{p.title}\n{p.text}")
    yamanashi = store.names_in_articles(["loc:jp:yamanashi", "loc:kr:seongnam"])
    assert set(yamanashi["002_c12aae596eddc73b"]) == {"loc:jp:yamanashi"}
    assert store.name_spread(["loc:vn:thanh-hoa", "loc:xx:nowhere"]).keys() == {"loc:vn:thanh-hoa"}


def test_a_new_names_version_recomputes_names_and_lexical_files_without_embedding(built, embedder, monkeypatch):
    from rag import indexing

    settings, _ = built
    db = sqlite3.connect(settings.index / open_store(settings).manifest.metadata)
    db.execute("DELETE FROM chunk_names")  # what an old gazetteer found: nothing
    db.commit()
    db.close()
    monkeypatch.setattr(indexing, "names_version", lambda: "a-new-gazetteer")
    report = update_index(settings, embedder, progress=False)
    assert report.embedded_chunks == 0
    store = open_store(settings)
    assert store.manifest.names_version == "a-new-gazetteer"
    assert store.name_spread(["loc:jp:yamanashi"]) == {"loc:jp:yamanashi": 1}  # names are back
    assert (store.generation / "lexical").is_dir() and (store.generation / "language_sums.npz").is_file()
