"""``rag serve`` for real: uvicorn on 127.0.0.1 (a free port), the official ``openai`` client and ``httpx``.

The server runs in this process over a writable copy of the seed corpus, with
the session's embedding model and two keys, a reader and a writer.  No LLM
unless a test starts the scripted one (tests/llm_server.py), so most answers
are extractive.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import httpx
import openai
import pytest
from playwright.sync_api import Page, expect

from rag.api.app import ServeRefused, ThreadedServer, check_exposure, create_app, start_warming
from rag.api.service import Service
from rag.assistant import Assistant
from rag.auth import KeyConfigError, Keyring
from rag.config import load_settings

from .conftest import SEED_CORPUS
from .llm_server import fixture_reply, load_fixture
from .test_ui import SLOW, browser, clean_settings  # noqa: F401  (browser: the fixture)
from .test_ui import ask as ask_in_page

pytestmark = pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword is deprecated)")
READ_SECRET = "read-secret-0123456789"
WRITE_SECRET = "write-secret-0123456789"
KEYS = f"reader:read:{READ_SECRET},writer:write:{WRITE_SECRET}"
MAX_ARTICLE_BYTES = 50_000
YAMANASHI = "002_c12aae596eddc73b"
YAMANASHI_QUESTION = "What did Thanh Hoa agree with Yamanashi?"
BATAM = {"title": "Festival Lampion Batam", "url": "https://example.com/batam", "date": "2026-03-03", "lang": "id",
         "text": "Pemerintah Kota Batam menggelar festival lampion terbesar pada 3 Maret 2026. Festival itu "
                 "dihadiri 40.000 pengunjung dari Singapura dan Malaysia. Wali Kota Batam Amsakar Achmad membuka "
                 "acara festival lampion tersebut di alun-alun Engku Putri."}


@dataclass
class Running:
    url: str
    corpus: Path
    service: Service

    def client(self, key: str = READ_SECRET, **kw) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0, timeout=120, **kw)

    def http(self, key: str | None = READ_SECRET) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)


def make_service(folder: Path, corpus: Path, embedder, cache_dir, keys: str | None = KEYS, **values) -> Service:
    settings = clean_settings(folder, corpus=corpus, index=folder / "index", model_cache=cache_dir / "models",
                              max_article_bytes=MAX_ARTICLE_BYTES, api_keys=keys, **values)
    return Service(Assistant(settings, embedder=embedder), Keyring.from_settings(settings))


@pytest.fixture(scope="module")
def server(tmp_path_factory, cache_dir, embedder):
    """The server with keys over a copy of the seed corpus, ready (its index built)."""
    folder = tmp_path_factory.mktemp("server")
    corpus = folder / "corpus"
    shutil.copytree(SEED_CORPUS, corpus)
    service = make_service(folder, corpus, embedder, cache_dir)
    with ThreadedServer(create_app(service)) as running:
        start_warming(service).join()
        assert service.ready, service.failure
        yield Running(running.url, corpus, service)


def error_of(response: httpx.Response) -> dict:
    """The OpenAI-shaped error body every failure has."""
    assert response.headers["content-type"].startswith("application/json")
    return response.json()["error"]


# ------------------------------------------------------------------------ start-up, keys


def test_before_the_index_is_open_the_api_says_503_then_ready(server, tmp_path, embedder, cache_dir):
    service = make_service(tmp_path, server.corpus, embedder, cache_dir)
    with ThreadedServer(create_app(service, ui=False)) as running, httpx.Client(base_url=running.url) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        ready = http.get("/readyz")
        assert ready.status_code == 503 and ready.headers["retry-after"] and error_of(ready)["code"] == "not_ready"
        auth = {"Authorization": f"Bearer {READ_SECRET}"}
        assert http.post("/v1/search", json={"query": "Seongnam"}, headers=auth).status_code == 503
        client = Running(running.url, server.corpus, service).client()
        with pytest.raises(openai.InternalServerError) as failed:
            client.chat.completions.create(model="rag-news", messages=[{"role": "user", "content": "Seongnam?"}])
        assert failed.value.status_code == 503 and "starting" in failed.value.message
        start_warming(service).join()
        assert http.get("/readyz").json() == {"status": "ready", "mode": "extractive", "auth": True}
        assert http.post("/v1/search", json={"query": "Seongnam"}, headers=auth).status_code == 200


def test_no_key_or_a_wrong_key_is_401_and_a_read_key_writing_is_403(server):
    with pytest.raises(openai.AuthenticationError) as wrong:
        server.client(key="not-a-key-0123456789").models.list()
    assert wrong.value.status_code == 401 and wrong.value.message.endswith("invalid API key")
    with server.http(key=None) as anonymous:
        response = anonymous.post("/v1/search", json={"query": "Seongnam"})
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
        assert "missing API key" in error_of(response)["message"]
        assert anonymous.get("/v1/models").status_code == 401
        assert anonymous.get("/healthz").status_code == 200  # probes need no key
    with server.http(READ_SECRET) as reader:
        assert reader.get("/v1/articles").status_code == 200
        response = reader.post("/v1/articles", json=BATAM)
        assert response.status_code == 403 and error_of(response)["code"] == "write_key_required"
        assert reader.delete(f"/v1/articles/{YAMANASHI}").status_code == 403
    assert (server.corpus / f"{YAMANASHI}.txt").is_file()  # nothing was written or deleted
    assert [m.id for m in server.client().models.list()] == ["rag-news"]


def test_a_network_address_without_keys_is_refused_unless_no_auth():
    check_exposure("127.0.0.1", Keyring(), no_auth=False)
    check_exposure("::1", Keyring(), no_auth=False)
    with pytest.raises(ServeRefused, match="--no-auth"):
        check_exposure("0.0.0.0", Keyring(), no_auth=False)
    check_exposure("0.0.0.0", Keyring(), no_auth=True)
    check_exposure("0.0.0.0", Keyring.of([(f"a:read:{READ_SECRET}", "test")]), no_auth=False)


@pytest.mark.parametrize("entry, problem", [
    ("reader:read", "name:role:secret"),
    ("reader:admin:" + READ_SECRET, "read or write"),
    ("reader:read:short", "shorter than 16"),
])
def test_malformed_keys_are_refused_with_the_reason(entry, problem):
    with pytest.raises(KeyConfigError, match=problem):
        Keyring.of([(entry, "RAG_API_KEYS")])
    with pytest.raises(KeyConfigError, match="reuses the secret"):
        Keyring.of([(f"a:read:{READ_SECRET}", "x"), (f"b:write:{READ_SECRET}", "x")])


def test_keys_come_from_the_environment_and_a_keys_file(tmp_path, monkeypatch):
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"# team keys\nwriter:write:{WRITE_SECRET}\n\n")
    monkeypatch.setenv("RAG_API_KEYS", f"reader:read:{READ_SECRET}")
    monkeypatch.setenv("RAG_API_KEYS_FILE", str(keys_file))
    keyring = Keyring.from_settings(load_settings())
    assert [(k.name, k.role) for k in keyring.keys] == [("reader", "read"), ("writer", "write")]
    assert keyring.by_secret(WRITE_SECRET).can_write and not keyring.by_secret(READ_SECRET).can_write
    assert keyring.login("reader", READ_SECRET) and not keyring.login("writer", READ_SECRET)
    assert READ_SECRET not in repr(keyring)


# ------------------------------------------------------------------------------ chat


def ask(server: Running, question: str, **kw):
    return server.client().chat.completions.create(model="rag-news", messages=[{"role": "user", "content": question}],
                                                   **kw)


def test_a_chat_completion_keeps_the_markers_and_carries_the_citations(server):
    completion = ask(server, YAMANASHI_QUESTION)
    assert completion.model == "rag-news" and completion.object == "chat.completion"
    text = completion.choices[0].message.content
    rag = completion.model_extra["rag"]
    assert rag["mode"] == "extractive" and not rag["refused"] and rag["notes"]
    markers = {int(n) for n in re.findall(r"\[(\d+)\]", text)}
    assert markers and markers == {c["n"] for c in rag["citations"]}
    for citation in rag["citations"]:
        assert citation["doc_id"] == YAMANASHI and citation["chunk_id"].startswith(f"{YAMANASHI}#")
        assert citation["supported"] is True and citation["url"].startswith("https://baothanhhoa.vn/")
        assert all(part in citation["passage"] for part in citation["text"].split(" … "))
    assert "Yamanashi" in text


def test_a_streamed_completion_is_the_same_answer_as_openai_streams_it(server):
    whole = ask(server, YAMANASHI_QUESTION)
    chunks = list(ask(server, YAMANASHI_QUESTION, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({chunk.id for chunk in chunks}) == 1 and all(c.object == "chat.completion.chunk" for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"
    assert "rag" not in (chunks[0].model_extra or {})
    assert chunks[-1].model_extra["rag"]["citations"] == whole.model_extra["rag"]["citations"]
    with server.http() as http, http.stream("POST", "/v1/chat/completions", json={
            "model": "rag-news", "stream": True, "messages": [{"role": "user", "content": YAMANASHI_QUESTION}]}) as raw:
        assert raw.headers["content-type"].startswith("text/event-stream")
        body = raw.read().decode()
    events = body.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    assert all(event.startswith("data: {") and json.loads(event[6:]) for event in events[:-2])


def test_earlier_messages_are_the_conversation_for_a_follow_up(server):
    first = ask(server, YAMANASHI_QUESTION)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": YAMANASHI_QUESTION},
                {"role": "assistant", "content": first.choices[0].message.content},
                {"role": "user", "content": [{"type": "text", "text": "and which conference?"}]}]
    follow_up = server.client().chat.completions.create(model="rag-news", messages=messages)
    assert follow_up.model_extra["rag"]["standalone_question"] == f"{YAMANASHI_QUESTION} and which conference?"
    assert any(c["doc_id"] == YAMANASHI for c in follow_up.model_extra["rag"]["citations"])


def test_chat_requests_that_cannot_be_answered_are_4xx_naming_the_problem(server):
    client = server.client()
    with pytest.raises(openai.NotFoundError, match="no model 'gpt-4o'"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Seongnam?"}])
    with pytest.raises(openai.UnprocessableEntityError, match="last message must be the user's question"):
        client.chat.completions.create(model="rag-news", messages=[{"role": "assistant", "content": "Hi"}])
    with pytest.raises(openai.UnprocessableEntityError, match="messages"):
        client.chat.completions.create(model="rag-news", messages=[])
    with server.http() as http:
        broken = http.post("/v1/chat/completions", content=b'{"model": "rag-news", "messages": [',
                           headers={"content-type": "application/json"})
        assert broken.status_code == 400 and error_of(broken)["code"] == "invalid_json"
        bad_filter = http.post("/v1/chat/completions", json={"model": "rag-news", "filters": {"since": "last week"},
                                                              "messages": [{"role": "user", "content": "Seongnam?"}]})
        assert bad_filter.status_code == 422 and "YYYY-MM-DD" in error_of(bad_filter)["message"]


@pytest.fixture
def llm_served(tmp_path, server, llm_server, embedder, cache_dir):
    """A second server over the same corpus and index, whose assistant asks the scripted LLM."""
    service = make_service(server.corpus.parent, server.corpus, embedder, cache_dir, llm_base_url=llm_server.base_url,
                           llm_api_key="test-key", llm_model="test-model", llm_timeout=10.0, llm_max_retries=0)
    with ThreadedServer(create_app(service, ui=False)) as running:
        start_warming(service).join()
        yield Running(running.url, server.corpus, service)


def test_a_real_models_recorded_answer_streams_checked_with_the_llm_mode(llm_served, llm_server):
    recorded = load_fixture("correct-cross-lingual-vi")
    llm_server.script(fixture_reply("correct-cross-lingual-vi"))
    chunks = list(ask(llm_served, recorded["question"], stream=True))
    rag = chunks[-1].model_extra["rag"]
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert rag["mode"] == "llm" and re.search(r"\[\d\]", text)
    assert {c["doc_id"] for c in rag["citations"]} == {"000_4c94815e66c1bf8a"}
    assert llm_server.chat_requests[-1].body["stream"] is True


def test_an_unusable_model_answer_falls_back_to_extractive_and_says_so(llm_served, llm_server):
    recorded = load_fixture("markers-only")
    llm_server.script(fixture_reply("markers-only"))
    completion = ask(llm_served, recorded["question"])
    rag = completion.model_extra["rag"]
    assert rag["mode"] == "extractive" and any("tidak ada teks selain penanda kutipan" in note for note in rag["notes"])  # asked in Indonesian


# ----------------------------------------------------------------------- search, articles


def test_search_returns_passages_with_scores(server):
    with server.http() as http:
        response = http.post("/v1/search", json={"query": YAMANASHI_QUESTION, "k": 3})
    hits = response.json()["data"]
    assert response.status_code == 200 and len(hits) == 3 and hits[0]["doc_id"] == YAMANASHI
    assert [h["rank"] for h in hits] == [1, 2, 3] and all(0 < h["score"] <= 1 for h in hits)
    assert {"chunk_id", "title", "url", "lang", "date", "text"} <= set(hits[0])


@pytest.mark.parametrize("body, status", [
    ({"query": ""}, 422), ({"query": "x", "k": 0}, 422), ({"k": 3}, 422), ({"query": "x", "top": 3}, 422),
    ({"query": "x", "filters": {"since": "2025-13-01"}}, 422),
    ({"query": "x", "filters": {"since": "2025-06-01", "until": "2025-01-01"}}, 422),
    ({"query": "x", "filters": {"language": "vi"}}, 422),
])
def test_a_bad_search_is_422_never_500(server, body, status):
    with server.http() as http:
        response = http.post("/v1/search", json=body)
    assert response.status_code == status and error_of(response)["message"]


def test_search_filters_narrow_the_passages_and_still_fill_k(server):
    with server.http() as http:
        malay = http.post("/v1/search", json={"query": "Thanh Hoa", "k": 3, "filters": {"languages": ["ms"]}})
        one = http.post("/v1/search", json={"query": "Thanh Hoa", "k": 2,
                                            "filters": {"article_ids": "000_4c94815e66c1bf8a"}})
        dated = http.post("/v1/search", json={"query": "Thanh Hoa", "filters": {"since": "2025-11-01"}})
    assert [h["lang"] for h in malay.json()["data"]] == ["ms"] * 3
    assert [h["doc_id"] for h in one.json()["data"]] == ["000_4c94815e66c1bf8a"] * 2
    assert dated.json()["data"] and all(h["date"] >= "2025-11-01" for h in dated.json()["data"])


def test_chat_filters_restrict_the_articles_an_answer_cites(server):
    completion = server.client().chat.completions.create(
        model="rag-news", messages=[{"role": "user", "content": YAMANASHI_QUESTION}],
        extra_body={"filters": {"languages": ["id"]}})
    assert all(c["lang"] == "id" for c in completion.model_extra["rag"]["citations"])


def test_articles_are_listed_a_page_at_a_time(server):
    with server.http() as http:
        first = http.get("/v1/articles", params={"limit": 2}).json()
        rest = http.get("/v1/articles", params={"offset": first["next_offset"], "limit": 10}).json()
        assert http.get("/v1/articles", params={"limit": 0}).status_code == 422
    assert first["total"] == 5 and len(first["data"]) == 2 and first["next_offset"] == 2
    assert len(rest["data"]) == 3 and rest["next_offset"] is None
    ids = [a["id"] for a in first["data"] + rest["data"]]
    assert sorted(ids) == sorted(p.stem for p in SEED_CORPUS.iterdir())


def test_an_added_article_is_indexed_at_once_and_a_deleted_one_is_gone(server):
    with server.http(WRITE_SECRET) as http:
        added = http.post("/v1/articles", json=BATAM)
        assert added.status_code == 201, added.text
        article_id = added.json()["added"][0]["id"]
        assert added.json()["index"]["added"] == [article_id] and added.json()["index"]["articles"] == 6
        assert added.json()["added"][0] | {"id": None} == {"id": None, **{k: BATAM[k] for k in ("title", "url", "date", "lang")}}
        hits = http.post("/v1/search", json={"query": "festival lampion Batam", "k": 1}).json()["data"]
        assert hits[0]["doc_id"] == article_id
        answer = ask(server, "Berapa pengunjung festival lampion Batam?")
        assert {c["doc_id"] for c in answer.model_extra["rag"]["citations"]} == {article_id}
        assert "40.000" in answer.choices[0].message.content

        deleted = http.delete(f"/v1/articles/{article_id}")
        assert deleted.status_code == 200 and deleted.json()["index"]["removed"] == [article_id]
        assert not (server.corpus / f"{article_id}.jsonl").exists()
        hits = http.post("/v1/search", json={"query": "festival lampion Batam", "k": 5}).json()["data"]
        assert article_id not in {h["doc_id"] for h in hits}
        assert http.get("/v1/articles").json()["total"] == 5
        again = http.delete(f"/v1/articles/{article_id}")
        assert again.status_code == 404 and error_of(again)["code"] == "ArticleNotFound"


def test_an_uploaded_file_is_an_article_and_one_record_of_a_jsonl_can_be_deleted(server):
    records = [{"id": f"bulk-{i}", "title": f"Bulk {i}", "text": f"{BATAM['text']} Catatan nomor {i}."}
               for i in (1, 2)]
    jsonl = "".join(json.dumps(r) + "\n" for r in records).encode()
    with server.http(WRITE_SECRET) as http:
        added = http.post("/v1/articles", files={"file": ("bulk.jsonl", jsonl, "application/jsonl")})
        assert added.status_code == 201, added.text
        assert sorted(a["id"] for a in added.json()["added"]) == ["bulk-1", "bulk-2"]
        assert http.delete("/v1/articles/bulk-1").json()["index"]["removed"] == ["bulk-1"]
        assert [json.loads(line)["id"] for line in (server.corpus / "bulk.jsonl").read_text().splitlines()] == ["bulk-2"]
        assert http.delete("/v1/articles/bulk-2").status_code == 200
        page = f"{BATAM['title']}\n\n{BATAM['text']}\n\nSumber: {BATAM['url']}\n".encode()
        added = http.post("/v1/articles", files={"file": ("lampion.txt", page, "text/plain")})
        assert added.status_code == 201 and added.json()["added"][0]["url"] == BATAM["url"]
        assert http.delete("/v1/articles/lampion").json()["index"]["removed"] == ["lampion"]
    assert not (server.corpus / "bulk.jsonl").exists() and not (server.corpus / "lampion.txt").exists()


@pytest.mark.parametrize("name", ["../../outside.txt", "/etc/cron.d/outside.txt", "..\\..\\outside.txt"])
def test_an_upload_named_outside_the_corpus_lands_inside_it(server, name):
    page = f"{BATAM['title']}\n\n{BATAM['text']}\n".encode()
    with server.http(WRITE_SECRET) as http:
        added = http.post("/v1/articles", files={"file": (name, page, "text/plain")})
        assert added.status_code == 201, added.text
        [article] = added.json()["added"]
        assert ".." not in article["id"] and "/" not in article["id"]
        assert any(p.stem == article["id"] for p in server.corpus.iterdir())
        assert not (server.corpus.parent / "outside.txt").exists() and not Path("/etc/cron.d/outside.txt").exists()
        assert http.delete(f"/v1/articles/{article['id']}").status_code == 200


def test_bad_uploads_are_refused_with_their_status_and_nothing_changes(server):
    before = sorted(p.name for p in server.corpus.iterdir())
    text = "Sebuah artikel. " * 10
    with server.http(WRITE_SECRET) as http:
        cases = [
            (http.post("/v1/articles", files={"file": ("big.txt", b"a" * (MAX_ARTICLE_BYTES + 1), "text/plain")}), 413),
            (http.post("/v1/articles", files={"file": ("huge.txt", b"a" * (MAX_ARTICLE_BYTES + 100_000))}), 413),
            (http.post("/v1/articles", json={**BATAM, "text": "kata " * MAX_ARTICLE_BYTES}), 413),
            (http.post("/v1/articles", files={"file": ("photo.png", b"\x89PNG\r\n", "image/png")}), 415),
            (http.post("/v1/articles", files={"file": ("notes.txt", text.encode(), "image/png")}), 415),
            (http.post("/v1/articles", content=text, headers={"content-type": "text/plain"}), 415),
            (http.post("/v1/articles", files={"file": ("binary.txt", bytes(range(256)) * 4, "text/plain")}), 422),
            (http.post("/v1/articles", files={"file": ("empty.md", b"", "text/markdown")}), 422),
            (http.post("/v1/articles", files={"other": ("a.txt", text.encode(), "text/plain")}), 422),
            (http.post("/v1/articles", content=b'{"title": "x", "text": ', headers={"content-type": "application/json"}), 400),
            (http.post("/v1/articles", json={"title": "no text"}), 422),
            (http.post("/v1/articles", json={**BATAM, "date": "3 March"}), 422),
            (http.post("/v1/articles", json={**BATAM, "url": "javascript:alert(1)"}), 422),
            (http.post("/v1/articles", json={**BATAM, "lang": "Indonesian"}), 422),
        ]
        for response, status in cases:
            assert response.status_code == status, (status, response.text)
            assert error_of(response)["message"]
        assert http.get("/v1/articles").json()["total"] == 5
    assert sorted(p.name for p in server.corpus.iterdir()) == before


# ------------------------------------------------------------------ the chat page, signed in


def sign_in(page: Page, url: str, name: str, secret: str) -> Page:
    page.goto(f"{url}/")
    page.locator('input[data-testid="textbox"]').fill(name)
    page.locator('input[type="password"]').fill(secret)
    page.get_by_role("button", name="Login").click()
    return page


def signed_in(page: Page, url: str, name: str, secret: str) -> Page:
    """The chat page, signed in with a key, once it shows the index."""
    sign_in(page, url, name, secret)
    expect(page.locator("#banner .index-status")).to_contain_text("chunks, index built", timeout=SLOW)
    return page


def field(page: Page, elem_id: str):
    return page.locator(f"#{elem_id}").locator("input, textarea").first


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    yield context.new_page()
    context.close()


def test_the_chat_page_asks_for_a_key_and_refuses_a_wrong_one(server, page):
    page.goto(f"{server.url}/")
    expect(page.get_by_text("Sign in with the name and the secret of an API key")).to_be_visible(timeout=SLOW)
    expect(page.locator("#chat")).to_have_count(0)
    sign_in(page, server.url, "reader", WRITE_SECRET)  # a real secret, but not this key's
    expect(page.get_by_text("Incorrect Credentials")).to_be_visible(timeout=SLOW)
    expect(page.locator("#chat")).to_have_count(0)
    with httpx.Client(base_url=server.url) as anonymous:  # nor can the page's own API be used without signing in
        assert anonymous.get("/config").status_code == 401


def test_a_read_key_can_chat_but_not_add_articles(server, page):
    signed_in(page, server.url, "reader", READ_SECRET)
    bot = ask_in_page(page, YAMANASHI_QUESTION)
    expect(bot).to_contain_text("Yamanashi")
    expect(page.locator("#add-articles")).to_be_hidden()
    page.get_by_text("Filters", exact=True).click()
    field(page, "filter-since").fill("yesterday")
    page.fill("#question textarea", "Thị trưởng Seongnam là ai?")
    page.click("#ask")
    expect(page.locator('#chat [data-testid="bot"]').last).to_contain_text("YYYY-MM-DD", timeout=SLOW)


def test_a_write_key_can_also_paste_an_article(server, page):
    signed_in(page, server.url, "writer", WRITE_SECRET)
    expect(page.locator("#add-articles")).to_be_visible()
    page.get_by_text("Add articles", exact=True).click()
    page.get_by_role("tab", name="Paste text").click()
    field(page, "paste-title").fill("Lomba Perahu Naga Tanjung Pinang")
    field(page, "paste-url").fill("https://example.com/perahu-naga")
    field(page, "paste-text").fill("Lomba perahu naga di Tanjung Pinang diikuti 32 tim dari lima negara. "
                                   "Tim dari Penang memenangkan lomba perahu naga itu pada hari Minggu.")
    page.click("#add-text")
    status = page.locator("#upload-status")
    expect(status).to_contain_text("added “Lomba Perahu Naga Tanjung Pinang”", timeout=SLOW)
    expect(status).to_contain_text("1 added")
    with server.http(WRITE_SECRET) as http:
        assert http.delete("/v1/articles/Lomba-Perahu-Naga-Tanjung-Pinang").status_code == 200


def test_the_filter_controls_narrow_the_sources_of_an_answer(server, page):
    signed_in(page, server.url, "reader", READ_SECRET)
    page.get_by_text("Filters", exact=True).click()
    page.get_by_label("Indonesian").check()
    ask_in_page(page, YAMANASHI_QUESTION)
    expect(page.locator("#sources .source-meta").first).to_contain_text("Indonesian")
    expect(page.locator("#sources .source-meta").filter(has_text="Malay")).to_have_count(0)


def test_the_page_refuses_writes_of_a_read_session_even_when_called_directly(server):
    """The form is hidden from readers; its handlers check the role too, since Gradio's API can be called directly."""
    from ui.app import READ_ONLY, ChatApp

    chat = ChatApp(server.service.assistant, keyring=server.service.keyring)
    before = sorted(p.name for p in server.corpus.iterdir())
    reader, writer = gr.Request(username="reader"), gr.Request(username="writer")
    assert READ_ONLY in chat.add_pasted("Title", "", BATAM["text"], reader)[0]
    assert READ_ONLY in chat.add_files([str(server.corpus / f"{YAMANASHI}.txt")], reader)[0]
    assert not chat.may_write(gr.Request(username="someone-else")) and chat.may_write(writer)
    assert sorted(p.name for p in server.corpus.iterdir()) == before
