"""The browser chat: HTML building as plain functions, then the real app driven in headless Chromium.

The app runs in this process on 127.0.0.1 (a free port) with the session's
embedding model, over a temporary copy of the seed corpus whose index does
not exist yet, so the first page load builds it.  Chromium is Debian's
(/usr/bin/chromium, installed by .ci/run); Playwright drives it.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from rag.answers import MODE_EXTRACTIVE, Answer, Citation
from rag.api.app import ThreadedServer, create_app
from rag.api.service import Service
from rag.assistant import Assistant
from rag.auth import Keyring
from rag.config import load_settings
from rag.retrieval import Hit
from rag.store import Manifest, Passage
from ui.app import ChatApp, build_app
from ui.render import NO_LLM_MODE, answer_markdown, banner_html, highlight, source_link, sources_html, status_html

from .conftest import SEED_CORPUS
from .llm_server import Reply

# Gradio 6.31's queue calls pandas APIs that pandas 3 deprecates; nothing to do with this project.
pytestmark = pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword is deprecated)")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SLOW = 180_000  # ms: answers and index updates on a shared 2-CPU machine
YAMANASHI_TITLE = "Thanh Hoa menghadiri Forum Kerjasama Tempatan Vietnam - Jepun"


# ------------------------------------------------------------- HTML building, no browser


def passage(row_id=1, text="Alpha beta. Gamma delta epsilon.", url="https://example.com/a", title="A title"):
    return Passage(row_id, "doc", 0, title, url, "ms", "2025-11-25", text, 0, len(text))


def answer_with(text, citations, passages, notes=()):
    return Answer("What?", text, citations, passages, MODE_EXTRACTIVE, notes=list(notes))


def test_answer_text_is_escaped_and_markers_link_to_their_sources():
    hit = Hit(1, 0.9, passage())
    answer = answer_with('<img src=x onerror="alert(1)"> ![x](http://evil) claim [1][7] ⚠', [Citation(1, hit, "Alpha beta.")],
                         [hit], notes=["<b>note</b>"])
    md = answer_markdown(answer, 3)
    assert "<img" not in md and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in md
    assert "![x](" not in md and "&#91;x&#93;" in md  # no Markdown image or link can form
    assert '<a class="cite" href="#src-3-1">&#91;1&#93;</a>' in md
    assert "&#91;7&#93;" in md and "#src-3-7" not in md  # no source 7: shown, not linked
    assert '<span class="unsupported" title="not backed by the passage it cites">⚠</span>' in md
    assert "&lt;b&gt;note&lt;/b&gt;" in md


def test_highlight_escapes_the_passage_and_marks_each_quoted_sentence():
    text = "First <script>x()</script> one. Second one here. Third one."
    html = highlight(text, "First <script>x()</script> one. … Third one.")
    assert "<script>" not in html
    assert html == ("<mark>First &lt;script&gt;x()&lt;/script&gt; one.</mark> Second one here. "
                    "<mark>Third one.</mark>")
    assert highlight("No match here.", "Something else.") == "No match here."


def test_only_web_addresses_become_links():
    link = source_link('https://example.com/a?b=1&c="2"')
    assert link.startswith('<a href="https://example.com/a?b=1&amp;c=&quot;2&quot;"')
    assert 'target="_blank"' in link and 'rel="noopener noreferrer"' in link
    assert source_link("javascript:alert(1)") == "javascript:alert(1)"
    assert source_link(None) == ""


def test_sources_panel_puts_cited_passages_first_and_folds_the_rest():
    cited, other = Hit(1, 0.9, passage(1)), Hit(2, 0.8, passage(2, "<img src=x onerror=alert(1)> text", "javascript:x"))
    first = answer_with("claim [1]", [Citation(1, cited, "Alpha beta.", supported=False)], [cited, other])
    second = answer_with("nothing", [], [cited])
    html = sources_html([first, second])
    latest, earlier = html.split('<details class="earlier"')
    assert 'id="src-2-' not in latest  # the latest answer cites nothing; its passage is folded
    assert '<details class="uncited"><summary>Retrieved passages (1), not cited' in latest
    assert 'id="src-1-1"' in earlier and "⚠ not backed by this passage" in earlier
    assert "<mark>Alpha beta.</mark>" in earlier
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert 'href="javascript' not in html


def test_banner_says_the_mode_and_what_is_indexed():
    manifest = Manifest("m", "f", 384, 220, 40, "o200k_base", "1", built_at=0.0, articles=5, chunks=37)
    html = banner_html(NO_LLM_MODE, manifest)
    assert "no language model configured: extractive answers" in html and "5 articles, 37 chunks" in html
    assert "language model gpt &lt;x&gt; at http://h/v1" in banner_html("gpt <x> at http://h/v1", None)
    assert "no index yet" in banner_html(NO_LLM_MODE, None)
    assert status_html([(False, "<b>bad.txt</b>: binary")]) == (
        '<div class="upload-status"><ul><li class="failed">✗ &lt;b&gt;bad.txt&lt;/b&gt;: binary</li></ul></div>')


def test_a_single_file_corpus_explains_that_uploads_need_a_folder(make_settings, tmp_path):
    corpus = tmp_path / "news.jsonl"
    corpus.write_text('{"id": "a", "text": "Satu dua tiga empat lima enam."}\n')
    demo = build_app(ChatApp(Assistant(make_settings(corpus, tmp_path / "index"))))
    blocks = demo.blocks.values()
    assert any(isinstance(b, gr.Markdown) and "needs a folder corpus" in b.value for b in blocks)
    controls = [b for b in blocks if getattr(b, "elem_id", None) in ("upload", "add-files", "add-text")]
    assert len(controls) == 3 and not any(control.interactive for control in controls)


# ------------------------------------------------------------------------ in the browser


@dataclass
class RunningApp:
    url: str
    corpus: Path
    assistant: Assistant


def serve(assistant: Assistant) -> tuple[ThreadedServer, str]:
    """The server of `rag serve` without keys, not warmed up: the first page load builds the index."""
    server = ThreadedServer(create_app(Service(assistant, Keyring()))).start()
    return server, f"{server.url}/"


def clean_settings(folder: Path, **values):
    """Settings made outside a test function, so without the autouse environment isolation: do it here."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith(("RAG_", "OPENAI_"))]:
            patch.delenv(name)
        patch.chdir(folder)
        return load_settings(**values)


@pytest.fixture(scope="module")
def browser() -> Browser:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def app(tmp_path_factory, cache_dir, embedder):
    """The app over a writable copy of the seed corpus, with no index yet."""
    folder = tmp_path_factory.mktemp("ui")
    corpus = folder / "corpus"
    shutil.copytree(SEED_CORPUS, corpus)
    assistant = Assistant(clean_settings(folder, corpus=corpus, index=folder / "index",
                                         model_cache=cache_dir / "models"), embedder=embedder)
    server, url = serve(assistant)
    yield RunningApp(url, corpus, assistant)
    server.close()


@pytest.fixture()
def page(browser, app):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    yield open_chat(page, app.url)
    context.close()


def open_chat(page: Page, url: str) -> Page:
    page.goto(url)
    expect(page.locator("#banner .index-status")).to_contain_text("chunks, index built", timeout=SLOW)
    return page


def ask(page: Page, question: str):
    """Ask, wait for the finished answer (its sources replace the panel), return the last bot message."""
    number = page.locator('#chat [data-testid="user"]').count() + 1
    page.fill("#question textarea", question)
    page.click("#ask")
    expect(page.locator(f"#answer-{number} .asked")).to_have_text(f"Sources for “{question}”", timeout=SLOW)
    return page.locator('#chat [data-testid="bot"]').last


def open_add_articles(page: Page) -> None:
    if not page.locator("#upload").is_visible():
        page.get_by_text("Add articles", exact=True).click()


def add_articles(page: Page, files: list[Path]) -> None:
    open_add_articles(page)
    page.set_input_files("#upload input[type=file]", [str(f) for f in files])
    expect(page.locator("#upload tbody tr")).to_have_count(len(files), timeout=SLOW)  # uploaded to the server
    page.click("#add-files")


def test_first_start_builds_the_index_showing_progress(browser, app):
    assert not (app.corpus.parent / "index").exists()
    page = browser.new_page()
    page.goto(app.url)
    expect(page.locator("#chat")).to_contain_text(re.compile("Loading the embedding model|Reading and splitting the articles|embedding"),
                                                  timeout=SLOW)
    expect(page.locator("#banner .index-status")).to_have_text(
        re.compile(r"^5 articles, \d+ chunks, index built \d{4}-\d\d-\d\d \d\d:\d\d$"), timeout=SLOW)
    expect(page.locator("#banner .mode")).to_have_text("Mode: no language model configured: extractive answers")
    page.close()


def test_an_answer_cites_passages_shown_with_links_and_highlights(page):
    page.click("text=What did Thanh Hoa agree with Yamanashi?")  # an example fills the question box
    expect(page.locator("#question textarea")).to_have_value("What did Thanh Hoa agree with Yamanashi?")
    page.click("#ask")
    expect(page.locator("#sources .asked").first).to_contain_text("Yamanashi", timeout=SLOW)
    bot = page.locator('#chat [data-testid="bot"]').last
    expect(bot).to_contain_text("Yamanashi")
    expect(bot).to_contain_text("No language model is configured")
    expect(bot.locator("a.cite").first).to_have_text("[1]")

    card = page.locator("#src-1-1")
    expect(card).to_contain_text(YAMANASHI_TITLE)
    expect(card).to_contain_text("Malay")
    link = card.locator(".source-meta a")
    expect(link).to_have_attribute("href", re.compile(r"^https://baothanhhoa\.vn/"))
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("rel", re.compile("noopener"))
    expect(card.locator("mark").first).to_contain_text("Yamanashi")
    expect(page.locator("#sources details.uncited")).not_to_have_attribute("open", "")

    bot.locator("a.cite").first.click()  # opening a citation selects its passage in the panel
    expect(card).to_have_class(re.compile(r"\bselected\b"))
    expect(card).to_be_in_viewport()


def test_sessions_keep_their_own_conversation_and_follow_ups_use_it(browser, app):
    contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(2)]
    alice, bob = (open_chat(context.new_page(), app.url) for context in contexts)
    ask(alice, "What did Thanh Hoa agree with Yamanashi?")
    ask(bob, "Which conference?")
    expect(bob.locator("#sources .searched")).to_have_count(0)  # Bob has no earlier question
    expect(bob.locator('#chat [data-testid="user"]')).to_have_count(1)

    follow_up = ask(alice, "Which conference?")
    expect(alice.locator("#sources .searched").first).to_have_text(
        "searched as “What did Thanh Hoa agree with Yamanashi? Which conference?”")
    expect(follow_up).to_contain_text("Yamanashi")
    expect(alice.locator('#chat [data-testid="user"]')).to_have_count(2)
    expect(bob.locator('#chat [data-testid="user"]')).to_have_count(1)

    # a citation of the first answer opens its folded sources
    alice.locator('#chat [data-testid="bot"]').first.locator("a.cite").first.click()
    expect(alice.locator("#answer-1")).to_have_attribute("open", "")
    expect(alice.locator("#src-1-1")).to_be_in_viewport()

    alice.click("#new-conversation")
    expect(alice.locator('#chat [data-testid="user"]')).to_have_count(0)
    expect(alice.locator("#sources .sources.empty")).to_be_visible()
    expect(bob.locator('#chat [data-testid="user"]')).to_have_count(1)
    for context in contexts:
        context.close()


SUKAMAJU = """Jembatan gantung Sukamaju diresmikan Bupati Garut

Bupati Garut, Rudy Gunawan, meresmikan jembatan gantung sepanjang 120 meter di Desa Sukamaju pada hari Senin.

Jembatan senilai 2,4 miliar rupiah itu dibangun oleh PT Sinar Cimanuk Jaya dan menghubungkan dua dusun yang terpisah oleh Sungai Cimanuk.

Warga kini dapat menyeberang tanpa perahu, terutama anak-anak sekolah dan petani yang membawa hasil panen.

Sumber: https://example.com/berita/jembatan-sukamaju
"""
XSS = """Festival layang-layang di Pantai Parangtritis

Panitia festival layang-layang Parangtritis <script>top["__xss"] = "script"</script> mencatat 312 layang-layang raksasa dari sebelas negara.

Pemenang kategori naga adalah tim <img src=x onerror="top['__xss'] = 'img'"> dari Bantul dengan layang-layang sepanjang 80 meter.

Festival itu digelar setiap bulan Juli dan menarik puluhan ribu wisatawan ke pantai selatan Yogyakarta.
"""


def test_an_uploaded_article_is_indexed_and_found_by_a_question(page, app, tmp_path):
    before = app.assistant.store.manifest.articles
    article = tmp_path / "jembatan-sukamaju.txt"
    article.write_text(SUKAMAJU)
    add_articles(page, [article])
    status = page.locator("#upload-status")
    expect(status).to_contain_text("jembatan-sukamaju.txt: added “Jembatan gantung Sukamaju diresmikan Bupati Garut”"
                                   " (Indonesian)", timeout=SLOW)
    expect(status).to_contain_text("index updated: 1 added", timeout=SLOW)
    expect(page.locator("#banner .index-status")).to_contain_text(f"{before + 1} articles")

    answer = ask(page, "Who opened the suspension bridge in Sukamaju?")
    expect(answer).to_contain_text("Rudy Gunawan")
    expect(page.locator("#src-1-1")).to_contain_text("Jembatan gantung Sukamaju diresmikan Bupati Garut")
    expect(page.locator("#src-1-1 .source-meta a")).to_have_attribute("href", "https://example.com/berita/jembatan-sukamaju")


def test_html_in_an_article_is_shown_as_text_and_never_runs(page, tmp_path):
    article = tmp_path / "layang-layang.txt"
    article.write_text(XSS)
    add_articles(page, [article])
    expect(page.locator("#upload-status")).to_contain_text("index updated: 1 added", timeout=SLOW)

    answer = ask(page, "Berapa layang-layang raksasa di festival Parangtritis?")
    expect(answer).to_contain_text('Parangtritis <script>top["__xss"] = "script"</script> mencatat 312')
    expect(page.locator("#sources")).to_contain_text('<script>top["__xss"] = "script"</script>')
    expect(page.locator("#sources")).to_contain_text("<img src=x onerror=\"top['__xss'] = 'img'\">")
    assert page.locator("#sources script, #sources img, #chat script, #chat img[src=x]").count() == 0
    assert page.evaluate("window.__xss") is None


def test_bad_uploads_are_refused_and_the_index_keeps_its_articles(page, app, tmp_path):
    before = app.assistant.store.manifest.articles
    files = {"photo.txt": bytes(range(256)) * 8, "empty.md": b"", "report.pdf": b"%PDF-1.7"}
    for name, raw in files.items():
        (tmp_path / name).write_bytes(raw)
    add_articles(page, [tmp_path / name for name in files])
    status = page.locator("#upload-status")
    expect(status.locator("li.failed")).to_have_count(3, timeout=SLOW)
    expect(status).to_contain_text("photo.txt: binary file")
    expect(status).to_contain_text("empty.md: no article text")
    expect(status).to_contain_text("report.pdf: unsupported file type '.pdf'")
    expect(status.locator("li.ok")).to_have_count(0)
    assert not any((app.corpus / name).exists() for name in files)
    expect(page.locator("#banner .index-status")).to_contain_text(f"{before} articles")
    assert ask(page, "Thị trưởng Seongnam là ai?").locator("a.cite").count() > 0


def test_pasted_text_becomes_an_article_with_its_title_and_link(page):
    open_add_articles(page)
    page.get_by_role("tab", name="Paste text").click()
    page.fill("#paste-title textarea", "Pasar apung Lok Baintan")
    page.fill("#paste-url textarea", "https://example.com/lok-baintan")
    page.fill("#paste-text textarea", "Pasar apung Lok Baintan di Sungai Martapura dibuka setiap pagi sejak pukul "
                                      "enam. Para pedagang menjual sayur dan buah dari atas jukung.")
    page.click("#add-text")
    expect(page.locator("#upload-status")).to_contain_text("index updated: 1 added", timeout=SLOW)
    expect(page.locator("#paste-title textarea")).to_have_value("")

    ask(page, "Jam berapa pasar apung Lok Baintan dibuka?")
    card = page.locator("#src-1-1")
    expect(card).to_contain_text("Pasar apung Lok Baintan")
    expect(card.locator(".source-meta a")).to_have_attribute("href", "https://example.com/lok-baintan")


def test_llm_answers_stream_into_the_chat(browser, seed_assistant, llm_server, cache_dir, embedder, tmp_path):
    settings = clean_settings(tmp_path, corpus=SEED_CORPUS, index=seed_assistant.settings.index,
                              model_cache=cache_dir / "models", llm_base_url=llm_server.base_url,
                              llm_api_key="test-key", llm_model="test-model", llm_timeout=5.0, llm_max_retries=0)
    assistant = Assistant(settings, embedder=embedder)
    llm_server.script(Reply(text="Yamanashi agreed with Thanh Hoa's cooperation proposals [1]. They also invited "
                                 "Thanh Hoa to a conference on energy and agriculture [1].", chunk_delay=0.25))
    server, url = serve(assistant)
    try:
        page = open_chat(browser.new_page(), url)
        expect(page.locator("#banner .mode")).to_have_text(f"Mode: language model test-model at {llm_server.base_url}")
        page.fill("#question textarea", "What did Thanh Hoa agree with Yamanashi?")
        page.click("#ask")
        bot = page.locator('#chat [data-testid="bot"]').last
        expect(bot).to_contain_text("▌", timeout=SLOW)  # partial text, still streaming
        expect(bot).to_contain_text("Yamanashi agreed")
        expect(page.locator("#sources .asked").first).to_contain_text("Yamanashi", timeout=SLOW)
        expect(bot).not_to_contain_text("▌")
        expect(bot).to_contain_text("invited Thanh Hoa to a conference on energy and agriculture")
        expect(bot.locator("a.cite").first).to_have_text("[1]")
        expect(page.locator("#src-1-1")).to_contain_text(YAMANASHI_TITLE)
        assert llm_server.chat_requests[-1].body["stream"] is True
        page.close()
    finally:
        server.close()
