"""The browser chat: a Gradio app over one shared :class:`rag.assistant.Assistant`.

The assistant (embedding model, open index) is shared by everyone using the
page; each browser session keeps its own conversation in a ``gr.State``, so
people chatting at the same time never see each other's turns.  Answers
run side by side, and never wait for an index update (first build, new
articles): each reads its own snapshot of the index, and an added article is
searchable once its upload says so.  :mod:`rag.api.app` mounts the page at ``/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import gradio as gr

from rag.answers import Answer, FinalAnswer
from rag.assistant import AddedFile, Assistant
from rag.corpus import ArticleError, CorpusError
from rag.errors import UserError
from rag.generation import Turn
from rag.indexing import IndexReport
from rag.auth import Keyring
from rag.filters import SearchFilters
from rag.language import language_name
from rag.store import StoreError
from rag.stores import backend_for

from .render import (
    NO_LLM_MODE,
    banner_html,
    chat_messages,
    escape_text,
    sources_html,
    status_html,
    streaming_markdown,
)

UPLOAD_ERRORS = (ArticleError, CorpusError, OSError)
EXAMPLES = [
    "What did Thanh Hoa agree with Yamanashi?",
    "Thị trưởng Seongnam là ai?",
    "Proyek apa yang ditawarkan investor Kota Ho Chi Minh di Nghe An?",
    "Ai dẫn đầu đoàn Hội đồng TP Daejeon?",
]
FILTER_LANGUAGES = [("Vietnamese", "vi"), ("Indonesian", "id"), ("Malay", "ms"), ("English", "en")]
READ_ONLY = "not added: your key may only read; adding articles needs a write key"
CHAT_CONCURRENCY = 4  # answers computed at once; more wait in Gradio's queue
THEME = gr.themes.Soft(primary_hue="indigo", font=["system-ui", "sans-serif"])
CSS = """
.banner { display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; padding: .6rem .9rem; border-radius: 8px;
          background: var(--background-fill-secondary); border: 1px solid var(--border-color-primary); }
.banner .mode.extractive { color: #92400e; } .banner .mode.llm { color: #065f46; }
.dark .banner .mode.extractive { color: #fbbf24; } .dark .banner .mode.llm { color: #34d399; }
.banner .index-status { color: var(--body-text-color-subdued); }
.sources.empty { color: var(--body-text-color-subdued); padding: 1rem 0; }
.asked { font-weight: 600; margin-bottom: .2rem; } .searched { font-size: .85em; color: var(--body-text-color-subdued); }
.source { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: .6rem .8rem; margin: .5rem 0;
          background: var(--background-fill-primary); transition: box-shadow .3s; }
.source.selected { box-shadow: 0 0 0 3px var(--color-accent); }
.source-head { font-weight: 600; } .source-label { color: var(--color-accent); margin-right: .3rem; }
.source-meta { font-size: .82em; color: var(--body-text-color-subdued); margin: .15rem 0 .4rem; word-break: break-all; }
.passage { white-space: pre-wrap; font-size: .9em; line-height: 1.45; }
.passage mark { background: #fde68a; color: #1f2937; padding: 0 .1em; border-radius: 2px; }
details.uncited, details.earlier { margin-top: .6rem; opacity: .85; }
details.uncited > summary, details.earlier > summary { cursor: pointer; color: var(--body-text-color-subdued); }
.unsupported { color: #b45309; font-weight: 600; }
a.cite { font-weight: 600; text-decoration: none; font-size: .9em; }
.note { font-size: .85em; color: var(--body-text-color-subdued); }
.upload-status ul { margin: .3rem 0; padding-left: 0; list-style: none; } .upload-status .ok { color: #065f46; }
.upload-status .failed { color: #b91c1c; }
.dark .upload-status .ok { color: #34d399; } .dark .upload-status .failed { color: #f87171; }
.dark .unsupported { color: #fbbf24; }
"""
# Citation links point at passages in the sources panel: open any folded section around it, then show it.
HEAD = """<script>
document.addEventListener("click", (event) => {
  const link = event.target.closest && event.target.closest('a[href^="#src-"]');
  const target = link && document.getElementById(link.getAttribute("href").slice(1));
  if (!target) return;
  event.preventDefault();
  for (let d = target.closest("details"); d; d = d.parentElement && d.parentElement.closest("details")) d.open = true;
  document.querySelectorAll(".source.selected").forEach((e) => e.classList.remove("selected"));
  target.classList.add("selected");
  target.scrollIntoView({behavior: "smooth", block: "nearest"});
});
</script>"""


def history_of(answers: list[Answer]) -> list[Turn]:
    """The conversation so far, as the assistant wants it for follow-up questions."""
    return [turn for answer in answers for turn in (Turn("user", answer.question), Turn("assistant", answer.text))]


def describe_added(name: str, added: AddedFile) -> str:
    """One status line: what went in, and under which file name when the uploaded name was taken."""
    saved = "" if added.path.name == name else f" as {added.path.name}"
    if len(added.articles) == 1:
        article = added.articles[0]
        return f"{name}: added “{article.title}” ({language_name(article.lang)}){saved}"
    return f"{name}: added {len(added.articles)} articles{saved}"


class ChatApp:
    """The event handlers; they share the assistant, and keep no conversation themselves."""

    def __init__(self, assistant: Assistant, *, keyring: Keyring | None = None):
        self.assistant = assistant
        self.keyring = keyring or Keyring()  # empty: no sign-in, everyone may add articles

    def login(self, name: str, secret: str) -> bool:
        """Gradio's sign-in check: the name and the secret of one API key."""
        return self.keyring.login(name, secret) is not None

    def may_write(self, request: gr.Request | None) -> bool:
        """Whether this session may add articles: always without sign-in, else with a write key."""
        if not self.keyring:
            return True
        key = self.keyring.by_name(getattr(request, "username", None) or "")
        return key is not None and key.can_write

    def permissions(self, request: gr.Request) -> dict:
        """On page load: show the form to add articles only to sessions that may use it."""
        return gr.update(visible=self.may_write(request))

    @property
    def accepts_uploads(self) -> bool:
        return not Path(self.assistant.settings.corpus).is_file()

    def mode(self) -> str:
        return self.assistant.llm.describe() if self.assistant.settings.llm_configured else NO_LLM_MODE

    def banner(self, status: str | None = None) -> str:
        try:
            manifest = self.assistant.store.manifest
        except StoreError:
            manifest = None
        return banner_html(self.mode(), manifest, status)

    def update_index(self, progress: gr.Progress) -> IndexReport:
        """Index what changed in the corpus; the embedding progress bar shows in the page (tqdm is tracked)."""
        progress(0, desc="Loading the embedding model")
        _ = self.assistant.embedder
        progress(0, desc="Reading and splitting the articles")
        return self.assistant.index(progress=True)

    def prepare(self, progress=gr.Progress(track_tqdm=True)) -> Iterator[str]:
        """On page load: build the index when there is none, else catch up with the corpus folder."""
        first = not backend_for(self.assistant.settings.index).exists()
        yield self.banner("no index yet: building it, see the progress below…" if first else "checking the index…")
        try:
            self.update_index(progress)
        except UserError as exc:
            yield self.banner(f"index unavailable: {exc}")
            return
        yield self.banner()

    def respond(self, question: str, answers: list[Answer], languages: list[str] | None = None, since: str = "",
                until: str = "", sources: str = "") -> Iterator[tuple]:
        """Stream the answer into the chat, then show its sources; ``answers`` is this session's conversation.

        The filter controls narrow the articles the answer may come from.
        """
        question = question.strip()
        if not question:
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        waiting = '<span class="note">Searching the articles…</span>'
        yield "", chat_messages(answers, (question, waiting)), gr.skip(), gr.skip()
        text = ""
        try:
            filters = SearchFilters.of(languages=languages, since=since, until=until, sources=sources)
            stream = self.assistant.answer_stream(question, history_of(answers), filters=filters or None)
            for event in stream:
                if isinstance(event, FinalAnswer):
                    break
                text += event.text
                yield gr.skip(), chat_messages(answers, (question, streaming_markdown(text))), gr.skip(), gr.skip()
        except UserError as exc:
            failed = f'<span class="unsupported">⚠ {escape_text(str(exc))}</span>'
            yield gr.skip(), chat_messages(answers, (question, failed)), gr.skip(), gr.skip()
            return
        answers = [*answers, event.answer]
        yield gr.skip(), chat_messages(answers), sources_html(answers), answers

    def add_files(self, paths: list[str] | None, request: gr.Request, progress=gr.Progress(track_tqdm=True)) -> tuple:
        """Add uploaded files to the corpus (each checked by the parser first), then update the index."""
        if not self.may_write(request):
            return status_html([(False, READ_ONLY)]), gr.skip(), None
        if not paths:
            return status_html([(False, "Choose one or more files first.")]), gr.skip(), gr.skip()
        results, added = [], 0
        for path in paths:
            name = Path(path).name
            try:
                result = self.assistant.add_file(name, Path(path).read_bytes())
            except UPLOAD_ERRORS as exc:
                results.append((False, f"not added: {exc}"))
            else:
                results.append((True, describe_added(name, result)))
                added += 1
        return self._finish_adding(results, added, progress), self.banner(), None

    def add_pasted(self, title: str, url: str, text: str, request: gr.Request,
                   progress=gr.Progress(track_tqdm=True)) -> tuple:
        """Add pasted text as an article, then update the index; the form is cleared once it is in."""
        if not self.may_write(request):
            return status_html([(False, READ_ONLY)]), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        try:
            result = self.assistant.add_text(title, text, url)
        except UPLOAD_ERRORS as exc:
            return status_html([(False, f"not added: {exc}")]), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        status = self._finish_adding([(True, describe_added("pasted text", result))], 1, progress)
        return status, self.banner(), "", "", ""

    def _finish_adding(self, results: list[tuple[bool, str]], added: int, progress: gr.Progress) -> str:
        if added:
            try:
                report = self.update_index(progress)
            except UserError as exc:
                results.append((False, f"the index was not updated: {exc}"))
            else:
                results.append((True, report.summary()))
        return status_html(results)


def build_app(app: ChatApp) -> gr.Blocks:
    """The page: banner, chat with examples, sources panel, and the form to add articles."""
    with gr.Blocks(title="rag-news: ask the news", analytics_enabled=False) as demo:
        answers = gr.State([])
        gr.Markdown("## Ask the news\nAsk in English, Vietnamese or Indonesian: every claim of the answer "
                    "cites the article passage it comes from.")
        banner = gr.HTML(banner_html(app.mode(), None, "checking the index…"), elem_id="banner", js_on_load=None)
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(label="Conversation", show_label=False, elem_id="chat", height=560,
                                     latex_delimiters=[], buttons=["copy"], feedback_options=None, layout="bubble")
                with gr.Row():
                    question = gr.Textbox(show_label=False, placeholder="Your question…", elem_id="question",
                                          scale=5, autofocus=True, max_lines=4)
                    ask = gr.Button("Ask", variant="primary", elem_id="ask", scale=1, min_width=80)
                with gr.Accordion("Filters", open=False, elem_id="filters"):
                    with gr.Row():
                        languages = gr.CheckboxGroup(FILTER_LANGUAGES, label="Languages", elem_id="filter-languages")
                        filter_sources = gr.Textbox(label="Sources", placeholder="kompas.com, vnexpress.net",
                                                    elem_id="filter-sources")
                    with gr.Row():
                        since = gr.Textbox(label="Since", placeholder="YYYY-MM-DD", elem_id="filter-since")
                        until = gr.Textbox(label="Until", placeholder="YYYY-MM-DD", elem_id="filter-until")
                gr.Examples([[q] for q in EXAMPLES], inputs=question, label="Examples")
                clear = gr.Button("New conversation", size="sm", elem_id="new-conversation")
            with gr.Column(scale=2):
                gr.Markdown("### Sources")
                sources = gr.HTML(sources_html([]), elem_id="sources", js_on_load=None, max_height=640)
        with gr.Accordion("Add articles", open=False, elem_id="add-articles") as add_articles:
            if not app.accepts_uploads:
                gr.Markdown(f"The corpus is the single file `{app.assistant.settings.corpus}`: adding articles "
                            "needs a folder corpus. Restart with `rag ui --corpus FOLDER`.")
            with gr.Tab("Upload files"):
                files = gr.File(label="Articles: .txt, .md, .html or .jsonl", file_count="multiple",
                                elem_id="upload", interactive=app.accepts_uploads)
                upload = gr.Button("Add to the corpus", elem_id="add-files", interactive=app.accepts_uploads)
            with gr.Tab("Paste text"):
                title = gr.Textbox(label="Title", elem_id="paste-title")
                url = gr.Textbox(label="Source URL", placeholder="https://…", elem_id="paste-url")
                text = gr.Textbox(label="Article text", lines=8, elem_id="paste-text")
                paste = gr.Button("Add to the corpus", elem_id="add-text", interactive=app.accepts_uploads)
            upload_status = gr.HTML("", elem_id="upload-status", js_on_load=None)

        demo.load(app.prepare, outputs=banner, show_progress_on=chatbot)
        demo.load(app.permissions, outputs=add_articles)
        chat_outputs = [question, chatbot, sources, answers]
        gr.on([question.submit, ask.click], app.respond, [question, answers, languages, since, until, filter_sources],
              chat_outputs,
              concurrency_limit=CHAT_CONCURRENCY, concurrency_id="chat", show_progress="minimal",
              trigger_mode="once")  # one answer at a time per session: each extends the conversation
        clear.click(lambda: ([], sources_html([]), []), outputs=[chatbot, sources, answers])
        upload.click(app.add_files, files, [upload_status, banner, files], concurrency_id="index")
        paste.click(app.add_pasted, [title, url, text], [upload_status, banner, title, url, text],
                    concurrency_id="index")
    return demo

