"""The library API: adding articles (what the browser's upload and paste forms call), and answers across updates.

The index update after an upload is covered by tests/test_ui.py, through the browser.
"""

import json
from pathlib import Path
import threading
import time

import pytest

from rag.answers import MODE_LLM, FinalAnswer, TextDelta
from rag.assistant import ArticleNotFound, Assistant
from rag.corpus import ArticleError, CorpusError, load_corpus
from rag.store import writer_lock

from .llm_server import Reply

ARTICLE = (
    "Jembatan gantung baru di Desa Sukamaju diresmikan\n\n"
    "Bupati Garut meresmikan jembatan gantung sepanjang 120 meter di Desa Sukamaju pada hari Senin.\n\n"
    "Jembatan itu menghubungkan dua dusun yang selama ini terpisah oleh Sungai Cimanuk.\n\n"
    "Sumber: https://example.com/berita/jembatan-sukamaju\n"
)


@pytest.fixture()
def assistant(make_settings, corpus_copy, tmp_path):
    return Assistant(make_settings(corpus_copy, tmp_path / "index"))


def corpus_files(folder):
    return sorted(path.name for path in folder.iterdir())


def test_an_uploaded_file_is_parsed_then_written_under_its_own_name(assistant, corpus_copy):
    added = assistant.add_file("jembatan.txt", ARTICLE.encode())
    assert added.path == corpus_copy / "jembatan.txt"
    assert added.path.read_text() == ARTICLE
    [article] = added.articles
    assert (article.doc_id, article.lang, article.url) == ("jembatan", "id", "https://example.com/berita/jembatan-sukamaju")
    articles, errors = load_corpus(corpus_copy)
    assert "jembatan" in {a.doc_id for a in articles} and not errors


def test_a_taken_name_gets_a_number_instead_of_replacing_the_article(assistant, corpus_copy):
    original = (corpus_copy / "002_c12aae596eddc73b.txt").read_bytes()
    added = assistant.add_file("002_c12aae596eddc73b.md", ARTICLE.encode())
    assert added.path.name == "002_c12aae596eddc73b-2.md"
    assert added.articles[0].doc_id == "002_c12aae596eddc73b-2"
    assert (corpus_copy / "002_c12aae596eddc73b.txt").read_bytes() == original
    assert assistant.add_file("002_c12aae596eddc73b.md", ARTICLE.encode()).path.name == "002_c12aae596eddc73b-3.md"


def test_an_upload_never_replaces_a_file_another_process_wrote_under_the_same_name(assistant, corpus_copy,
                                                                                    monkeypatch):
    """Two uploads of one name at once (two servers, or the UI and the API) both chose the free name, and the
    second rename replaced the first file (python -m bench faults, class writers)."""
    from rag import assistant as module

    read_upload = module._read_upload

    def another_process_writes_first(shown, file_name, raw, max_bytes):
        if not (corpus_copy / "jembatan.txt").exists():
            (corpus_copy / "jembatan.txt").write_text("the other upload", encoding="utf-8")
        return read_upload(shown, file_name, raw, max_bytes)

    monkeypatch.setattr(module, "_read_upload", another_process_writes_first)
    added = assistant.add_file("jembatan.txt", ARTICLE.encode())
    assert (corpus_copy / "jembatan.txt").read_text() == "the other upload"
    assert added.path.name == "jembatan-2.txt" and added.path.read_text() == ARTICLE
    assert [a.doc_id for a in added.articles] == ["jembatan-2"]
    assert not [p for p in corpus_copy.iterdir() if p.name.startswith(".")]


def test_a_file_name_is_made_safe(assistant, corpus_copy):
    added = assistant.add_file("../../Berita: Jembatan baru!.TXT", ARTICLE.encode())
    assert added.path.parent == corpus_copy
    assert added.path.name == "Berita-Jembatan-baru.txt"


@pytest.mark.parametrize(
    ("name", "raw", "reason"),
    [
        ("photo.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "binary file"),
        ("empty.md", b"", "no article text left"),
        ("report.pdf", b"%PDF-1.7 text", "unsupported file type '.pdf'"),
        ("bulk.jsonl", b'{"id": "a1", "text": "Satu dua tiga empat lima."}\nnot json\n', "bulk.jsonl:2: not a JSON record"),
    ],
)
def test_an_unusable_file_is_refused_with_its_name_and_nothing_is_written(assistant, corpus_copy, name, raw, reason):
    before = corpus_files(corpus_copy)
    with pytest.raises(ArticleError) as caught:
        assistant.add_file(name, raw)
    message = str(caught.value)
    assert message.startswith(name.split("/")[-1].split(":")[0]) and reason in message
    assert "rag-upload-" not in message  # names the upload, not the private copy
    assert corpus_files(corpus_copy) == before


def test_jsonl_records_are_added_unless_an_id_is_taken(assistant, corpus_copy):
    records = [{"id": f"bulk-{i}", "title": f"Berita {i}", "text": ARTICLE} for i in range(3)]
    raw = "".join(json.dumps(r) + "\n" for r in records).encode()
    added = assistant.add_file("bulk.jsonl", raw)
    assert [a.doc_id for a in added.articles] == ["bulk-0", "bulk-1", "bulk-2"]
    with pytest.raises(ArticleError, match="'bulk-1'.*already in the corpus"):
        assistant.add_file("more.jsonl", json.dumps(records[1]).encode())
    assert not (corpus_copy / "more.jsonl").exists()


def test_pasted_text_keeps_its_title_and_url(assistant, corpus_copy):
    added = assistant.add_text("Jembatan Sukamaju", "Bupati Garut meresmikan jembatan gantung di Desa Sukamaju.",
                               "https://example.com/sukamaju")
    assert added.path == corpus_copy / "Jembatan-Sukamaju.jsonl"
    [article] = added.articles
    assert (article.title, article.url, article.doc_id) == ("Jembatan Sukamaju", "https://example.com/sukamaju",
                                                             "Jembatan-Sukamaju")
    again = assistant.add_text("Jembatan Sukamaju", "Jembatan kedua diresmikan di Desa Sukamaju oleh Bupati.")
    assert again.articles[0].doc_id == "Jembatan-Sukamaju-2" and again.articles[0].url is None


def test_pasted_text_with_a_bad_url_or_no_text_is_refused(assistant, corpus_copy):
    before = corpus_files(corpus_copy)
    with pytest.raises(ArticleError, match="must start with http"):
        assistant.add_text("Judul", "Teks artikel yang cukup panjang di sini.", "javascript:alert(1)")
    with pytest.raises(ArticleError, match="no article text"):
        assistant.add_text("Judul", "   ")
    assert corpus_files(corpus_copy) == before


def test_pasted_text_keeps_a_given_date_and_language_and_refuses_malformed_ones(assistant, corpus_copy):
    added = assistant.add_text("Jembatan", "Bupati Garut meresmikan jembatan gantung di Desa Sukamaju.",
                               date="2026-03-03", lang="ms")
    assert (added.articles[0].date, added.articles[0].lang) == ("2026-03-03", "ms")
    before = corpus_files(corpus_copy)
    with pytest.raises(ArticleError, match="ISO date"):
        assistant.add_text("Judul", "Teks artikel yang cukup panjang di sini.", date="3 March 2026")
    with pytest.raises(ArticleError, match="ISO 639"):
        assistant.add_text("Judul", "Teks artikel yang cukup panjang di sini.", lang="Malay")
    assert corpus_files(corpus_copy) == before


def test_a_deleted_article_leaves_the_corpus_and_a_jsonl_keeps_its_other_records(assistant, corpus_copy):
    before = corpus_files(corpus_copy)
    assistant.add_file("jembatan.txt", ARTICLE.encode())
    assert assistant.delete_article("jembatan") == corpus_copy / "jembatan.txt"
    assert corpus_files(corpus_copy) == before
    records = [{"id": f"r{i}", "text": f"Rekaman nomor {i} tentang jembatan di Sukamaju."} for i in (1, 2, 3)]
    assistant.add_file("bulk.jsonl", "".join(json.dumps(r) + "\n" for r in records).encode())
    assistant.delete_article("r2")
    assert [json.loads(line)["id"] for line in (corpus_copy / "bulk.jsonl").read_text().splitlines()] == ["r1", "r3"]
    assistant.delete_article("r1"), assistant.delete_article("r3")
    assert corpus_files(corpus_copy) == before  # the file went with its last record
    with pytest.raises(ArticleNotFound, match="no article 'r1'"):
        assistant.delete_article("r1")


def test_a_single_file_corpus_cannot_take_uploads(make_settings, tmp_path):
    corpus = tmp_path / "news.jsonl"
    corpus.write_text(json.dumps({"id": "x", "text": ARTICLE}) + "\n")
    assistant = Assistant(make_settings(corpus, tmp_path / "index"))
    with pytest.raises(CorpusError, match="needs a folder corpus"):
        assistant.add_file("jembatan.txt", ARTICLE.encode())
    assert corpus.read_text().count("\n") == 1


# ------------------------------------------------------------------ answers and index updates

YAMANASHI = "002_c12aae596eddc73b"


@pytest.fixture()
def indexed(make_settings, corpus_copy, tmp_path, embedder, llm_server):
    """An assistant over its own index of the seed corpus, answering through the loopback LLM server."""
    settings = make_settings(corpus_copy, tmp_path / "index", llm_base_url=llm_server.base_url, llm_api_key="k",
                             llm_model="test-model", llm_timeout=5.0, llm_max_retries=0)
    assistant = Assistant(settings, embedder=embedder)
    assistant.index(progress=False)
    return assistant


def test_an_answer_reads_the_index_it_started_with(indexed, corpus_copy, llm_server):
    llm_server.script(Reply(text="Yamanashi agreed to the cooperation proposal [1].", chunk_delay=0.01),
                      "Yamanashi agreed to the cooperation proposal [1].")
    store = indexed.store
    stream = indexed.answer_stream("What did Thanh Hoa agree with Yamanashi?")
    assert isinstance(next(stream), TextDelta)  # retrieved, and the reply is streaming
    (corpus_copy / f"{YAMANASHI}.txt").unlink()
    indexed.index(progress=False)  # publishes an index without the article being cited
    assert indexed.store is not store
    assert YAMANASHI in {p.doc_id for p in store.all_passages()}  # the replaced generation is still open
    *_, final = stream
    assert isinstance(final, FinalAnswer) and final.answer.mode == MODE_LLM
    assert final.answer.citations[0].hit.passage.doc_id == YAMANASHI and final.answer.citations[0].supported
    later = indexed.answer("What did Thanh Hoa agree with Yamanashi?")
    assert YAMANASHI not in {hit.passage.doc_id for hit in later.passages}


def test_the_parts_are_given_to_the_constructor(seed_assistant, embedder, llm_server):
    from rag.generation import LLMClient
    from rag.stores.embedded import EmbeddedStore

    opened = []

    def open_store(folder):
        opened.append(EmbeddedStore.open(folder))
        return opened[-1]

    settings = seed_assistant.settings.model_copy(update={"llm_base_url": llm_server.base_url, "llm_model": "given",
                                                          "llm_max_retries": 0})
    llm = LLMClient(settings)
    assistant = Assistant(settings, embedder=embedder, open_store=open_store, llm=llm)
    assert assistant.embedder is embedder and assistant.llm is llm
    llm_server.script("Yamanashi agreed to the cooperation proposal [1].")
    assistant.answer("What did Thanh Hoa agree with Yamanashi?")
    assert len(opened) == 1 and assistant.store is opened[0]
    assert llm_server.chat_requests[-1].body["model"] == "given"


def test_answers_keep_to_the_filters(seed_assistant, llm_server):
    from rag.filters import SearchFilters

    question = "What did Thanh Hoa agree with Yamanashi?"
    unfiltered = seed_assistant.answer(question, use_llm=False)
    assert unfiltered.citations[0].hit.passage.doc_id == YAMANASHI
    only_vietnamese = SearchFilters.of(languages="vi")
    answer = seed_assistant.answer(question, use_llm=False, filters=only_vietnamese)
    assert answer.passages and {hit.passage.lang for hit in answer.passages} == {"vi"}
    assert all(c.hit.passage.lang == "vi" for c in answer.citations)
    streamed = list(seed_assistant.answer_stream(question, use_llm=False, filters=only_vietnamese))
    assert [h.passage.row_id for h in streamed[-1].answer.passages] == [h.passage.row_id for h in answer.passages]


def test_a_question_asked_during_an_index_update_is_answered_without_waiting_for_it(assistant, corpus_copy):
    """A 0.7 MB upload used to hold every chat until its embedding was done (about a minute, issue 15): the
    update held the assistant's lock throughout.  Here the update is held up by another writer holding the
    index's writer lock, as long as the test likes; the question must be answered meanwhile."""
    assistant.index(progress=False)
    (corpus_copy / "batam.txt").write_text(
        "Festival lampion Batam\n\nKota Batam menggelar festival lampion dengan 40.000 pengunjung.\n", encoding="utf-8")
    answers = []
    with writer_lock(Path(assistant.settings.index)):  # another writer is mid-update
        updating = threading.Thread(target=assistant.index, kwargs={"progress": False}, daemon=True)
        updating.start()
        time.sleep(2)  # the update has planned and waits for the writer lock
        asking = threading.Thread(target=lambda: answers.append(
            assistant.answer("What did Thanh Hoa agree with Yamanashi?", use_llm=False)), daemon=True)
        asking.start()
        asking.join(timeout=120)
        assert answers, "the question waited for the index update"
        assert updating.is_alive()
    updating.join()
    assert answers[0].citations and answers[0].citations[0].hit.passage.doc_id == "002_c12aae596eddc73b"
    assert "batam" in {hit.passage.doc_id for hit in assistant.search("festival lampion Batam", 3)}
