"""The PostgreSQL backend behind the whole product: the real model, the retriever, several server processes.

The store-level behaviour is in tests/test_stores.py (shared with the embedded store).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from contextlib import ExitStack

import pytest

psycopg = pytest.importorskip("psycopg", reason="the postgres extra is not installed")

from rag.assistant import Assistant  # noqa: E402
from rag.filters import SearchFilters  # noqa: E402
from rag.indexing import _stored_fingerprints  # noqa: E402
from rag.store import IndexCorrupt, StoreError  # noqa: E402
from rag.stores import backend_for, open_store  # noqa: E402
from rag.stores.postgres import MIGRATIONS  # noqa: E402

from .conftest import ROOT, SEED_CORPUS  # noqa: E402
from .store_corpus import MANIFEST, synthetic, write  # noqa: E402
from .test_answering import first_answers_reading_no_whole_corpus  # noqa: E402
from .test_retrieval import QUESTIONS  # noqa: E402

NEW_ARTICLE = {
    "id": "quang-ninh-okayama", "lang": "en", "date": "2026-03-03", "url": "https://example.org/qn-okayama",
    "title": "Quang Ninh and Okayama sign a tourism agreement",
    "text": "Quang Ninh province and Okayama prefecture signed a tourism cooperation agreement on 3 March 2026. "
            "Under the agreement, Okayama will open a tourism promotion office in Ha Long, and Quang Ninh will "
            "send 40 hotel trainees to Okayama every year.",
}


@pytest.fixture(scope="module")
def pg_assistant(postgres, make_settings, embedder):
    """An assistant over the seed corpus whose index is a PostgreSQL database, built once for the module."""
    postgres.psql("CREATE DATABASE seed_index;")
    settings = make_settings(SEED_CORPUS, postgres.get_uri("seed_index"))
    assistant = Assistant(settings, embedder=embedder)
    assistant.index(progress=False)
    return assistant


def test_the_schema_records_its_migrations(pg_assistant):
    with psycopg.connect(pg_assistant.settings.index) as db:
        versions = [row[0] for row in db.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == [number for number, _ in MIGRATIONS]


@pytest.mark.parametrize(("question", "gold"), QUESTIONS)
def test_retrieval_over_postgres_ranks_like_the_embedded_store(pg_assistant, seed_assistant, question, gold):
    """Same model, same fusion: the same articles come first (row ids differ between the backends)."""
    over_postgres = [(h.passage.chunk_id, round(h.score, 4)) for h in pg_assistant.search(question, k=5)]
    embedded = [(h.passage.chunk_id, round(h.score, 4)) for h in seed_assistant.search(question, k=5)]
    assert over_postgres == embedded


def test_filters_work_through_the_assistant(pg_assistant):
    hits = pg_assistant.search("What did Thanh Hoa agree with Yamanashi?", k=5, filters=SearchFilters.of(languages="vi"))
    assert hits and {h.passage.lang for h in hits} == {"vi"}


def test_a_new_process_answers_its_first_question_from_the_stored_vocabulary(pg_assistant, embedder, monkeypatch):
    from rag.stores.postgres import PostgresStore

    fresh = Assistant(pg_assistant.settings, embedder=embedder)
    first_answers_reading_no_whole_corpus(fresh, PostgresStore, monkeypatch)


def test_an_index_run_with_nothing_to_do_writes_nothing(pg_assistant):
    before = open_store(pg_assistant.settings.index).manifest.generation
    report = pg_assistant.index(progress=False)
    assert not report.changed_anything and report.unchanged == 5
    assert open_store(pg_assistant.settings.index).manifest.generation == before


def _terminate_other_sessions(url: str) -> None:
    """What a server restart does to every session but the caller's (here, the admin's own)."""
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = current_database() AND pid <> pg_backend_pid()")


def test_a_connection_lost_mid_query_is_a_clear_error(postgres_database):
    write(postgres_database, [synthetic("a-1"), synthetic("a-2")])
    store = open_store(postgres_database)
    _terminate_other_sessions(postgres_database)
    for query in (lambda: store.search(synthetic("a-1").vectors[0], 5), store.is_current,
                  lambda: store.lexical_search("Find Wa1", 5), lambda: store.word_spread(["wa1"])):
        with pytest.raises(StoreError, match=r"index database postgresql://.* failed mid-query .*server is running"):
            query()


def test_a_connection_lost_mid_update_is_a_clear_error_and_changes_nothing(postgres_database):
    write(postgres_database, [synthetic("a-1")])
    with pytest.raises(StoreError, match="index database"):
        with backend_for(postgres_database).writer(MANIFEST, start_empty=False, ivf_threshold=50_000) as writer:
            synthetic("lost-1").add_to(writer)
            _terminate_other_sessions(postgres_database)
            synthetic("lost-2").add_to(writer)
            writer.commit()
    assert set(open_store(postgres_database).fingerprints()) == {"a-1"}
    write(postgres_database, [synthetic("after-1")])  # the advisory lock went with the dead session
    assert set(open_store(postgres_database).fingerprints()) == {"a-1", "after-1"}


def test_an_index_in_an_older_format_is_rebuilt_not_misread(postgres_database):
    """Format 6 stores each sentence twice: rows of format 5 would be read as the wrong vectors."""
    write(postgres_database, [synthetic("a-1")])
    with psycopg.connect(postgres_database, autocommit=True) as db:
        db.execute("UPDATE generations SET manifest = jsonb_set(manifest, '{format}', '5')")
    with pytest.raises(IndexCorrupt, match=r"on-disk format 5, this version reads 6; run `rag index`"):
        open_store(postgres_database)
    assert _stored_fingerprints(backend_for(postgres_database), MANIFEST, False) == ({}, True, None)


def test_two_servers_on_one_database_see_each_others_articles(postgres, make_settings, embedder, cache_dir,
                                                              tmp_path):
    """Server A answers from the database; another process indexes a new article into it; A finds it at once."""
    postgres.psql("CREATE DATABASE shared_index;")
    url = postgres.get_uri("shared_index")
    first_corpus = tmp_path / "corpus-a"
    shutil.copytree(SEED_CORPUS, first_corpus)
    server_a = Assistant(make_settings(first_corpus, url), embedder=embedder)
    server_a.index(progress=False)
    question = "What will Quang Ninh send to Okayama every year?"
    assert "quang-ninh-okayama" not in {h.passage.doc_id for h in server_a.search(question, k=5)}

    second_corpus = tmp_path / "corpus-b"
    shutil.copytree(SEED_CORPUS, second_corpus)
    (second_corpus / "new.jsonl").write_text(json.dumps(NEW_ARTICLE) + "\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAG_MODEL_CACHE": str(cache_dir / "models"), "HF_HUB_OFFLINE": "1"}
    server_b = subprocess.run([sys.executable, "-c", "from rag.cli import main; main()", "index",
                               "--corpus", str(second_corpus), "--index", url],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert server_b.returncode == 0, server_b.stderr
    assert "1 added" in server_b.stdout

    answer = server_a.answer(question, use_llm=False)  # no restart, no index run in A
    assert answer.passages[0].passage.doc_id == "quang-ninh-okayama"
    assert not answer.refused and "40" in answer.text


def test_two_rag_servers_on_one_database_answer_an_article_added_through_the_other(postgres, embedder, cache_dir,
                                                                                   tmp_path):
    """Two app servers (uvicorn, each its own assistant and corpus folder) behind one database: an article added
    through A's API is answered through B's chat API, with no restart and no index run in B."""
    from rag.api.app import ThreadedServer, create_app, start_warming
    from rag.api.service import Service
    from rag.auth import Keyring

    from .test_server import BATAM, KEYS, MAX_ARTICLE_BYTES, WRITE_SECRET, Running, ask
    from .test_ui import clean_settings

    postgres.psql("CREATE DATABASE two_servers;")
    url = postgres.get_uri("two_servers")
    with ExitStack() as stack:
        servers = []
        for name in ("a", "b"):  # one after the other: B's start-up index run finds A's articles unchanged
            corpus = tmp_path / f"corpus-{name}"
            shutil.copytree(SEED_CORPUS, corpus)
            settings = clean_settings(tmp_path, corpus=corpus, index=url, model_cache=cache_dir / "models",
                                      max_article_bytes=MAX_ARTICLE_BYTES, api_keys=KEYS)
            service = Service(Assistant(settings, embedder=embedder), Keyring.from_settings(settings))
            running = stack.enter_context(ThreadedServer(create_app(service)))
            start_warming(service).join()
            assert service.ready, service.failure
            servers.append(Running(running.url, corpus, service))
        server_a, server_b = servers
        question = "Berapa pengunjung festival lampion Batam?"
        assert "40.000" not in ask(server_b, question).choices[0].message.content

        with server_a.http(WRITE_SECRET) as http:
            added = http.post("/v1/articles", json=BATAM)
        assert added.status_code == 201, added.text
        article_id = added.json()["added"][0]["id"]

        answer = ask(server_b, question)
        assert {c["doc_id"] for c in answer.model_extra["rag"]["citations"]} == {article_id}
        assert "40.000" in answer.choices[0].message.content
