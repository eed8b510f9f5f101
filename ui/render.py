"""Answers, sources and index status as chat Markdown and HTML: pure functions, testable without a browser.

Everything that came from an article or a model is escaped here, because the
page renders these strings as HTML: a ``<script>`` or ``<img onerror>`` inside
an article must show up as text.  Citation markers ``[n]`` become links to the
sources panel (``#src-<answer>-<n>``); the page's script opens the passage.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Sequence

from rag.answers import Answer, Citation
from rag.assistant import WEB_URL
from rag.citations import MARKER, UNSUPPORTED_FLAG, marker_numbers
from rag.language import language_name
from rag.retrieval import Hit
from rag.store import Manifest

NO_LLM_MODE = "no language model configured: extractive answers"
QUOTE_BREAK = re.compile(r"\s*…\s*")  # a quote of several sentences is joined with " … "


def escape_text(text: str) -> str:
    """``text`` for a Markdown message: no HTML, and no Markdown links or images (brackets are entities)."""
    return html.escape(text).replace("[", "&#91;").replace("]", "&#93;")


def citation_id(answer_no: int, n: int) -> str:
    return f"src-{answer_no}-{n}"


def answer_markdown(answer: Answer, answer_no: int) -> str:
    """The chat message for a finished answer: escaped text, markers linked to the sources panel, notes."""
    cited = {c.n for c in answer.citations}
    pieces, last = [], 0
    for match in MARKER.finditer(answer.text):
        pieces.append(_escape_answer_text(answer.text[last : match.start()]))
        pieces.append("".join(_marker_link(answer_no, n) if n in cited else f"&#91;{n}&#93;"
                              for n in marker_numbers(match.group(0))))
        last = match.end()
    pieces.append(_escape_answer_text(answer.text[last:]))
    notes = "".join(f'\n\n<span class="note">ℹ️ {escape_text(note)}</span>' for note in answer.notes)
    return "".join(pieces) + notes


def _escape_answer_text(text: str) -> str:
    flag = '<span class="unsupported" title="not backed by the passage it cites">⚠</span>'
    return escape_text(text).replace(UNSUPPORTED_FLAG.strip(), flag)


def _marker_link(answer_no: int, n: int) -> str:
    return f'<a class="cite" href="#{citation_id(answer_no, n)}">&#91;{n}&#93;</a>'


def streaming_markdown(text: str) -> str:
    """A partial answer while it streams: escaped, markers not linked yet (their sources are not known)."""
    return escape_text(text) + " ▌"


def chat_messages(answers: Sequence[Answer], pending: tuple[str, str] | None = None) -> list[dict]:
    """The Chatbot value for a conversation, plus an unfinished (question, answer Markdown) pair."""
    messages = []
    for number, answer in enumerate(answers, start=1):
        messages.append({"role": "user", "content": escape_text(answer.question)})
        messages.append({"role": "assistant", "content": answer_markdown(answer, number)})
    if pending:
        question, text = pending
        messages.append({"role": "user", "content": escape_text(question)})
        messages.append({"role": "assistant", "content": text})
    return messages


# ------------------------------------------------------------------ sources panel


def highlight(text: str, quote: str) -> str:
    """``text`` escaped, with the parts of ``quote`` it contains wrapped in ``<mark>``."""
    spans = []
    for fragment in filter(None, (part.strip() for part in QUOTE_BREAK.split(quote))):
        start = text.find(fragment)
        if start >= 0:
            spans.append((start, start + len(fragment)))
    out, position = [], 0
    for start, end in sorted(spans):
        start = max(start, position)
        if start >= end:
            continue
        out.append(html.escape(text[position:start]))
        out.append(f"<mark>{html.escape(text[start:end])}</mark>")
        position = end
    out.append(html.escape(text[position:]))
    return "".join(out)


def source_link(url: str | None) -> str:
    """A real link for web addresses only: a ``javascript:`` URL from an article stays text."""
    if not url:
        return ""
    if WEB_URL.match(url):
        return f'<a href="{html.escape(url)}" target="_blank" rel="noopener noreferrer">{html.escape(url)}</a>'
    return html.escape(url)


def passage_card(hit: Hit, label: str, quote: str | None = None, element_id: str | None = None,
                 supported: bool = True) -> str:
    """One passage: title, language, date, link, and its text with the cited part highlighted."""
    p = hit.passage
    meta = [language_name(p.lang), p.date or "", source_link(p.url)]
    flag = "" if supported else '<span class="unsupported">⚠ not backed by this passage</span>'
    text = highlight(p.text, quote) if quote else html.escape(p.text)
    id_attr = f' id="{element_id}"' if element_id else ""
    return (
        f'<div class="source"{id_attr}>'
        f'<div class="source-head"><span class="source-label">{html.escape(label)}</span> '
        f'<span class="source-title">{html.escape(p.title)}</span> {flag}</div>'
        f'<div class="source-meta">{" · ".join(part for part in meta if part)}'
        f' · <code>{html.escape(p.chunk_id)}</code></div>'
        f'<div class="passage">{text}</div></div>'
    )


def citation_card(citation: Citation, answer_no: int) -> str:
    return passage_card(citation.hit, f"[{citation.n}]", citation.quote, citation_id(answer_no, citation.n),
                        citation.supported)


def answer_sources(answer: Answer, answer_no: int) -> str:
    """Cited passages first; the other retrieved passages folded away, since the answer does not rest on them."""
    cited_rows = {c.hit.passage.row_id for c in answer.citations}
    others = [hit for hit in answer.passages if hit.passage.row_id not in cited_rows]
    parts = [f'<div class="asked">Sources for “{html.escape(answer.question)}”</div>']
    if answer.standalone_question and answer.standalone_question != answer.question:
        parts.append(f'<div class="searched">searched as “{html.escape(answer.standalone_question)}”</div>')
    parts += [citation_card(citation, answer_no) for citation in answer.citations]
    if others:
        label = "Other retrieved passages" if answer.citations else "Retrieved passages"
        cards = "".join(passage_card(hit, f"#{hit.rank}") for hit in others)
        parts.append(f'<details class="uncited"><summary>{label} ({len(others)}), not cited</summary>{cards}</details>')
    return "".join(parts)


def sources_html(answers: Sequence[Answer]) -> str:
    """The sources panel: the latest answer's sources, earlier answers' folded below."""
    if not answers:
        return '<div class="sources empty">Sources of each answer appear here: click a citation like [1] to open it.</div>'
    latest = len(answers)
    parts = [f'<div class="sources"><div class="answer-sources" id="answer-{latest}">'
             f'{answer_sources(answers[-1], latest)}</div>']
    for number in range(latest - 1, 0, -1):
        answer = answers[number - 1]
        parts.append(f'<details class="earlier" id="answer-{number}"><summary>Earlier: '
                     f'“{html.escape(answer.question)}”</summary>{answer_sources(answer, number)}</details>')
    parts.append("</div>")
    return "".join(parts)


# -------------------------------------------------------------------------- banner


def banner_html(mode: str, manifest: Manifest | None, status: str | None = None) -> str:
    """Which answering mode is on, and what the index holds (or what is happening to it)."""
    mode_class = "extractive" if mode == NO_LLM_MODE else "llm"
    mode_text = mode if mode == NO_LLM_MODE else f"language model {mode}"
    if status:
        index_text = status
    elif manifest is None:
        index_text = "no index yet"
    else:
        built = time.strftime("%Y-%m-%d %H:%M", time.localtime(manifest.built_at))
        index_text = f"{manifest.articles} articles, {manifest.chunks} chunks, index built {built}"
    return (f'<div class="banner"><span class="mode {mode_class}">Mode: {html.escape(mode_text)}</span>'
            f'<span class="index-status">{html.escape(index_text)}</span></div>')


def status_html(results: Sequence[tuple[bool, str]]) -> str:
    """What happened to each added file, then to the index: one escaped line each."""
    items = "".join(f'<li class="{"ok" if ok else "failed"}">{"✓" if ok else "✗"} {html.escape(line)}</li>'
                    for ok, line in results)
    return f'<div class="upload-status"><ul>{items}</ul></div>'
