"""The embedder's runtime choices: questions on ONNX Runtime or on few torch threads, bulk work on many, same vectors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rag.config import ConfigError, load_settings
from rag.embeddings import ONNX_GRAPH, Embedder, EncoderSpec, ModelError, export_onnx
from rag.threads import faiss_threads, resolve, torch_threads, usable_cores


@pytest.fixture()
def restore_torch_threads():
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


@pytest.fixture()
def threaded(embedder, cache_dir):
    """An embedder sharing the session's model, all on torch: 1 thread for questions and 3 for bulk work."""
    other = Embedder(cache_dir=cache_dir / "models", query_threads=1, bulk_threads=3, query_backend="torch")
    other.model = embedder.model
    return other


def threads_seen_by_model(embedder: Embedder, call) -> list[int]:
    """torch's thread count inside every forward pass of ``call``."""
    seen: list[int] = []
    handle = embedder.model.register_forward_pre_hook(lambda *_: seen.append(torch.get_num_threads()))
    try:
        call()
    finally:
        handle.remove()
    return seen


def test_a_question_runs_on_query_threads_and_restores_the_previous_count(threaded, restore_torch_threads):
    torch.set_num_threads(2)
    seen = threads_seen_by_model(threaded, lambda: threaded.embed_query("Ai thắng giải?"))
    assert seen == [1]
    assert torch.get_num_threads() == 2


def test_bulk_embedding_runs_on_bulk_threads(threaded, restore_torch_threads):
    torch.set_num_threads(2)
    texts = [f"Bài báo số {i} về cảng biển" for i in range(3)]
    seen = threads_seen_by_model(threaded, lambda: threaded.embed_passages(texts, batch_size=2, bulk=True))
    assert seen == [3, 3]
    assert torch.get_num_threads() == 2


def test_many_sentences_for_a_question_are_still_interactive(threaded, restore_torch_threads):
    sentences = [f"Câu số {i}." for i in range(100)]
    seen = threads_seen_by_model(threaded, lambda: threaded.embed_passages(sentences, batch_size=64))
    assert seen == [1, 1]


def test_indexing_embeds_in_bulk(threaded, make_settings, tmp_path, restore_torch_threads):
    from rag.indexing import update_index

    from .conftest import SEED_CORPUS

    seen = threads_seen_by_model(threaded, lambda: update_index(make_settings(SEED_CORPUS, tmp_path / "index"),
                                                                threaded, progress=False))
    assert seen and set(seen) == {3}


def test_onnx_runtime_gives_the_vectors_of_torch(embedder, cache_dir):
    """Questions run on ONNX Runtime by default; index vectors come from torch: they must be interchangeable."""
    torch_path = Embedder(cache_dir=cache_dir / "models", query_backend="torch")
    torch_path.model = embedder.model
    texts = ["Ai thắng giải?", "Jumlah korban banjir di Jakarta mencapai 1.200 orang menurut BPBD pada Senin pagi."]
    assert embedder.query_backend == "onnx"
    for kind in ("embed_queries", "embed_passages"):
        onnx_vectors, torch_vectors = getattr(embedder, kind)(texts), getattr(torch_path, kind)(texts)
        assert onnx_vectors.shape == torch_vectors.shape == (2, embedder.dim)
        assert np.all(np.sum(onnx_vectors * torch_vectors, axis=1) > 0.9999)
    assert np.allclose(embedder.embed_query(texts[0]), torch_path.embed_query(texts[0]), atol=1e-3)


def test_the_onnx_export_is_made_once(embedder):
    embedder.embed_query("warm")
    exported = sorted(embedder.cache_dir.glob(f"onnx-*/{ONNX_GRAPH}"))
    assert len(exported) == 1
    assert (exported[0].parent / f"{ONNX_GRAPH}.data").stat().st_size > 100_000_000  # the weights, beside the graph
    before = exported[0].stat().st_mtime_ns
    assert export_onnx(embedder.model, exported[0].parent) == exported[0].parent
    assert exported[0].stat().st_mtime_ns == before
    assert not list(exported[0].parent.glob("*.partial"))


def test_a_fresh_embedder_encodes_questions_from_the_export_without_loading_the_model(embedder):
    """What a new process does for a question: the exported graph, tokenizer and spec, no sentence-transformers."""
    texts = ["Ai thắng giải?", "Siapa wali kota Seongnam?  ", "Thị trưởng " * 400]  # the last is cut at 512 tokens
    expected = embedder.embed_queries(texts)
    fresh = Embedder(cache_dir=embedder.cache_dir)
    assert fresh.dim == embedder.dim
    vectors = fresh.embed_queries(texts)
    assert "model" not in vars(fresh)
    assert np.allclose(vectors, expected, atol=1e-6)
    for text in texts:  # the same tokens as sentence-transformers' own preprocessing
        prompt = embedder.model.prompts["query"]
        features = embedder.model.preprocess([text.strip()], prompt=prompt)
        ids, mask = fresh.onnx.tokenize([text.strip()], prompt)
        assert ids.tolist() == features["input_ids"].tolist() and mask.tolist() == features["attention_mask"].tolist()


def test_indexing_gets_the_question_encoder_ready(embedder, make_settings, tmp_path):
    """`rag index` and the UI's start-up pay the ONNX export and load, not the first question."""
    from rag.assistant import Assistant

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "bridge.txt").write_text("Jembatan baru\n\nBupati Garut meresmikan jembatan sepanjang 120 meter.\n")
    fresh = Embedder(cache_dir=embedder.cache_dir)
    fresh.model = embedder.model
    assistant = Assistant(make_settings(corpus, tmp_path / "index"), embedder=fresh)
    assert fresh._onnx_loading is None
    assistant.index(progress=False)
    assert EncoderSpec.load(fresh.onnx_folder) is not None
    assert fresh._onnx_loading is not None  # loading in the background
    assert fresh.onnx.spec.dim == embedder.dim


def test_onnx_refuses_a_model_it_cannot_pool(embedder, tmp_path):
    from sentence_transformers import SentenceTransformer

    cls_pooled = SentenceTransformer(modules=[embedder.model[0], embedder.model[2]], device="cpu")
    with pytest.raises(ModelError, match="query_backend = 'torch'"):
        export_onnx(cls_pooled, tmp_path / "unused")
    assert not (tmp_path / "unused").exists()


def test_torch_threads_restores_after_an_error(restore_torch_threads):
    torch.set_num_threads(2)
    with pytest.raises(RuntimeError), torch_threads(1) as used:
        assert used == torch.get_num_threads() == 1
        raise RuntimeError("boom")
    assert torch.get_num_threads() == 2


def test_zero_threads_means_every_usable_core():
    assert resolve(0) == usable_cores() >= 1
    assert resolve(3) == 3
    with pytest.raises(ValueError, match="thread count"):
        resolve(-1)


def test_thread_settings_come_from_the_configuration(cache_dir):
    settings = load_settings(model_cache=cache_dir / "models", query_threads=2, index_threads=0)
    embedder = Embedder.from_settings(settings)
    assert (embedder.query_threads, embedder.bulk_threads, embedder.query_backend) == (2, 0, "onnx")
    assert (load_settings().query_threads, load_settings().index_threads) == (1, 0)
    assert Embedder.from_settings(load_settings(query_backend="torch")).query_backend == "torch"
    with pytest.raises(ConfigError, match="query_threads"):
        load_settings(query_threads=-1)


def test_faiss_threads_restores_the_previous_count():
    import faiss

    before = faiss.omp_get_max_threads()
    try:
        faiss.omp_set_num_threads(2)
        with faiss_threads(1) as used:
            assert used == faiss.omp_get_max_threads() == 1
        assert faiss.omp_get_max_threads() == 2
    finally:
        faiss.omp_set_num_threads(before)


def _check_pooled_sentences(assistant, embedder, passages) -> float:
    """Check the stored chunk and sentence vectors of ``passages``; return how often a separately encoded
    sentence is nearest its own pooled vector among its chunk's sentences."""
    from rag.indexing import chunk

    store = assistant.store
    texts = [chunk(assistant.settings, store.article(p.doc_id))[p.position].embedding_text() for p in passages]
    stored = store.vectors_for([p.row_id for p in passages])
    assert np.all(np.sum(stored * embedder.embed_passages(texts, bulk=True), axis=1) > 0.999)  # unchanged
    nearest, total = 0, 0
    pooled = store.sentence_vectors([p.row_id for p in passages])
    for passage in passages:
        own = pooled[passage.row_id]
        separate = embedder.embed_passages(own.texts(passage.text), bulk=True)
        assert own.vectors.shape == separate.shape and len(separate) > 1
        assert np.all(np.sum(own.vectors * separate, axis=1) > 0.75)  # the same sentence, read in context
        assert np.all(np.sum(own.alone * separate, axis=1) > 0.999)  # and read alone (float16)
        nearest += int(np.sum(np.argmax(separate @ own.vectors.T, axis=1) == np.arange(len(separate))))
        total += len(separate)
    return nearest / total


def test_sentence_vectors_are_pooled_from_the_chunk_pass_over_the_right_tokens(seed_assistant, embedder):
    """Indexing pools each sentence's vector from its chunk's forward pass (one pass, not two).

    Pooled vectors carry their context, so a pooled sentence is not always nearest its own separate
    vector (neighbours share context), but a separately encoded sentence is nearest its own pooled
    vector for ~96% of the seed sentences; spans off by one sentence score 0%, which this catches.
    """
    passages = [p for p in seed_assistant.store.all_passages() if p.position == 0]
    assert _check_pooled_sentences(seed_assistant, embedder, passages) >= 0.8


def test_pooled_sentence_spans_account_for_the_title_before_the_text(embedder, make_settings, tmp_path):
    from rag.assistant import Assistant

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "port.txt").write_text(
        "Gubernur resmikan pelabuhan peti kemas terbesar di Indonesia timur\n\n"
        "Pelabuhan Makassar New Port mulai melayani kapal kargo internasional pada Senin pagi. "
        "Harga cabai rawit di pasar tradisional Bandung naik menjadi 80 ribu rupiah per kilogram. "
        "Tim nasional bulu tangkis Indonesia meraih dua medali emas di kejuaraan Asia. "
        "Hujan deras menyebabkan banjir setinggi satu meter di tiga kecamatan di Bekasi.\n")
    assistant = Assistant(make_settings(corpus, tmp_path / "index"), embedder=embedder)
    assistant.index(progress=False)
    [passage] = assistant.store.all_passages()
    assert not passage.text.startswith("Gubernur")  # the title is embedded before the text
    assert _check_pooled_sentences(assistant, embedder, [passage]) == 1.0


def test_a_span_the_model_cannot_see_is_encoded_on_its_own(embedder):
    """Past the model's input length there are no tokens to pool: that sentence falls back to its own encoding."""
    tail = "Pelabuhan baru di Makassar dibuka untuk kapal kargo pada hari Senin."
    text = " ".join(["Kalimat pengisi yang panjang tentang cuaca di Jakarta."] * 120) + " " + tail
    start = len(text) - len(tail)
    vectors, spans = embedder.embed_passages_and_spans([text], [[(0, 50), (start, len(text))]])
    assert vectors.shape == (1, embedder.dim) and spans[0].shape == (2, embedder.dim)
    np.testing.assert_allclose(spans[0][1], embedder.embed_passages([tail], bulk=True)[0], atol=1e-4)
    assert float(spans[0][0] @ embedder.embed_passages([text[:50]], bulk=True)[0]) < 0.999  # pooled, in context
