"""The embedder's runtime choices: questions on ONNX Runtime or on few torch threads, bulk work on many, same vectors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rag.config import ConfigError, load_settings
from rag.embeddings import Embedder, ModelError, OnnxEncoder, export_onnx
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
    exported = sorted(embedder.cache_dir.glob("onnx-*/model.onnx"))
    assert len(exported) == 1
    assert export_onnx(embedder.model, exported[0]) == exported[0]
    assert not list(exported[0].parent.glob("*.partial"))


def test_indexing_gets_the_question_encoder_ready(embedder, make_settings, tmp_path):
    """`rag index` and the UI's start-up pay the ONNX export and load, not the first question."""
    from rag.assistant import Assistant

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "bridge.txt").write_text("Jembatan baru\n\nBupati Garut meresmikan jembatan sepanjang 120 meter.\n")
    fresh = Embedder(cache_dir=embedder.cache_dir)
    fresh.model = embedder.model
    assistant = Assistant(make_settings(corpus, tmp_path / "index"), embedder=fresh)
    assert "onnx" not in vars(fresh)
    assistant.index(progress=False)
    assert "onnx" in vars(fresh)


def test_onnx_refuses_a_model_it_cannot_pool(embedder, tmp_path):
    from sentence_transformers import SentenceTransformer

    cls_pooled = SentenceTransformer(modules=[embedder.model[0], embedder.model[2]], device="cpu")
    with pytest.raises(ModelError, match="query_backend = 'torch'"):
        OnnxEncoder(cls_pooled, tmp_path / "unused.onnx", threads=1)


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
