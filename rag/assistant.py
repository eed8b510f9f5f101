"""The library API: one object that the CLI, the UI, the evaluation and the tests share.

It owns the expensive parts (the embedding model, the open index) so they are
loaded once per process, and keeps the index in step with the corpus.  Each
answer reads one snapshot of the index, so an update published meanwhile
neither mixes two versions into it nor closes the index under it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import tempfile
import threading
import time
import unicodedata
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain, count
from pathlib import Path

from . import citations
from .answers import (
    MODE_EXTRACTIVE,
    MODE_LLM,
    Answer,
    AnswerEvent,
    Citation,
    FinalAnswer,
    TextDelta,
    extractive_note,
    message,
)
from .citations import CheckedAnswer
from .config import Settings, load_settings
from .corpus import Article, ArticleError, CorpusError, Source, iter_sources, parse_source
from .embeddings import Embedder
from .errors import UserError
from .extractive import Extract, extract_answer, language_pulls
from .filters import SearchFilters
from .generation import LLMClient, LLMError, Turn, build_messages, could_be_refusal, is_refusal, rewrite_followup
from .indexing import IndexReport, update_index
from .language import detect_language, fold, language_name, name_phrases
from .names import NameVocabulary
from .retrieval import Hit, QuestionNames, RetrievalOptions, Retriever, own_language_calibration
from .store import SentenceVectors
from .stores import Store, open_store

FOLLOW_UP_WORDS = 6  # without an LLM, a question this short after another may borrow its words for retrieval
# ... when it names nothing ("Which conference?") or opens like a follow-up (folded: "and with Seongnam?",
# "Còn Seongnam?", "Bagaimana dengan Daejeon?")
FOLLOW_UP_OPENER = re.compile(r"(?:and|what about|how about|con|va|the con|dan|bagaimana dengan|kalau|lalu)\b")
WEB_URL = re.compile(r"https?://\S+$", re.I)


@dataclass(frozen=True)
class AddedFile:
    """A file put into the corpus folder by :meth:`Assistant.add_file`, and the articles the parser read from it."""

    path: Path
    articles: list[Article]


@dataclass(frozen=True)
class Asked:
    """A question as retrieval saw it; every answer to it (generated, refused or extractive) is built from this."""

    question: str
    standalone: str  # the follow-up rewritten for retrieval, or the question itself
    lang: str  # the language to answer in
    hits: tuple[Hit, ...]
    timings: dict[str, float]  # filled in stage by stage

    def answer(self, mode: str, text: str, citations: Sequence[Citation] = (), notes: Sequence[str] = (), *,
               refused: bool = False, model_reply: str | None = None) -> Answer:
        return Answer(self.question, text, tuple(citations), self.hits, mode, refused, tuple(notes),
                      self.standalone, self.timings, model_reply)


@dataclass(frozen=True)
class Unused:
    """Why there is no generated answer to show (the extractive answer's note), and what the model wrote, if anything."""

    why: str
    model_reply: str | None = None


@dataclass(frozen=True)
class IndexSnapshot:
    """One generation of the index and what is derived from it: everything an answer reads, taken once.

    An index published while an answer runs does not change the answer's
    view; the replaced store stays open while a snapshot holds it (SQLite
    closes the connection when the last reference goes).
    """

    store: Store

    @property
    def names(self) -> NameVocabulary:
        """Asked of the store, from the vocabulary written at index time: nothing to build per process."""
        return NameVocabulary(self.store)

    def sentences_of(self, hits: Sequence[Hit]) -> dict[int, SentenceVectors]:
        return self.store.sentence_vectors(hit.passage.row_id for hit in hits)


class Assistant:
    """Answers from the articles; its parts (embedding model, index opener, LLM client) default from ``settings``."""

    def __init__(self, settings: Settings | None = None, *, embedder: Embedder | None = None,
                 open_store: Callable[[Path | str], Store] = open_store, llm: LLMClient | None = None):
        self.settings = settings or load_settings()
        self._embedder = embedder
        self._open_store = open_store
        self._llm = llm
        self._store: Store | None = None
        self._lock = threading.RLock()

    @property
    def embedder(self) -> Embedder:
        """The embedding model given, or the one ``settings`` name (loaded on first use)."""
        with self._lock:
            if self._embedder is None:
                self._embedder = Embedder.from_settings(self.settings)
            return self._embedder

    @property
    def llm(self) -> LLMClient:
        """The LLM client given, or one for the endpoint in ``settings``."""
        with self._lock:
            if self._llm is None:
                self._llm = LLMClient(self.settings)
            return self._llm

    def index(self, *, rebuild: bool = False, progress: bool = True, load_queries: bool = True) -> IndexReport:
        """Bring the index up to date with the corpus (incrementally unless ``rebuild``); ready the question encoder
        (exported once; loaded in the background unless ``load_queries`` is false: ``rag index`` asks nothing)."""
        # Not under self._lock: answers read their own snapshot and must not wait for an update's embedding
        # (a 0.7 MB upload held every chat for a minute); writers are serialised by the backend's writer lock.
        report = update_index(self.settings, self.embedder, rebuild=rebuild, progress=progress)
        with self._lock:
            self._reopen_if_changed()
        self.embedder.prepare_queries(progress=progress, load=load_queries)
        return report

    @property
    def store(self) -> Store:
        """The live index, reopened when another process has published a newer generation."""
        with self._lock:
            self._reopen_if_changed()
            if self._store is None:
                self._store = self._open_store(self.settings.index)
            return self._store

    def _reopen_if_changed(self) -> None:
        """Forget a replaced generation; it is not closed, because a running answer may still be reading it."""
        if self._store is not None and not self._store.is_current():
            self._store = None

    def snapshot(self) -> IndexSnapshot:
        """The live index, one generation of it."""
        return IndexSnapshot(self.store)

    def retriever(self, snapshot: IndexSnapshot | None = None) -> Retriever:
        """Search over ``snapshot`` (the live index when not given)."""
        snapshot = snapshot or self.snapshot()
        return Retriever(snapshot.store, self.embedder, RetrievalOptions.from_settings(self.settings))

    def answer(self, question: str, history: Sequence[Turn] = (), *, use_llm: bool | None = None,
               filters: SearchFilters | None = None) -> Answer:
        """Answer ``question`` from the articles, with citations (see :meth:`answer_stream`)."""
        *_, final = self.answer_stream(question, history, use_llm=use_llm, filters=filters)
        return final.answer

    def answer_stream(
        self, question: str, history: Sequence[Turn] = (), *, use_llm: bool | None = None,
        filters: SearchFilters | None = None,
    ) -> Iterator[AnswerEvent]:
        """Yield :class:`TextDelta` pieces as the model writes them, then the checked :class:`FinalAnswer`.

        Only the articles passing ``filters`` are searched.  ``use_llm`` defaults to whether an endpoint is
        configured.  The whole answer reads one :class:`IndexSnapshot`.  When
        no passage found answers the question closely enough (``llm_gate``),
        the model is not asked and the answer is a refusal.  When the endpoint
        fails, or its answer is unusable (only markers, nothing backed by its
        sources), the answer is extractive, with a note saying why.
        """
        use_llm = self.settings.llm_configured if use_llm is None else use_llm
        lang = detect_language(question)
        lang = "en" if lang == "und" else lang
        snapshot = self.snapshot()
        timings: dict[str, float] = {}
        clock = time.perf_counter()

        standalone = self._standalone(question, history, use_llm)
        timings["rewrite"] = time.perf_counter() - clock
        clock = time.perf_counter()
        retriever = self.retriever(snapshot)
        query = retriever.embed(standalone)
        hits = retriever.search_embedded(standalone, query, self.settings.top_k, filters)
        timings["retrieve"] = time.perf_counter() - clock
        asked = Asked(question, standalone, lang, tuple(hits), timings)

        clock = time.perf_counter()
        extract = self._answering_extract(snapshot, asked, query)
        timings["extract"] = time.perf_counter() - clock
        unused = Unused(message("no_llm", lang))
        if use_llm and extract is None and self.settings.llm_gate:
            unused = Unused(message("llm_not_asked", lang))
        elif use_llm:
            generated = yield from self._generated(snapshot, asked, history)
            if isinstance(generated, Answer):
                yield FinalAnswer(generated)
                return
            unused = generated
        yield FinalAnswer(self._extractive_answer(asked, extract, unused))

    def _standalone(self, question: str, history: Sequence[Turn], use_llm: bool) -> str:
        if not history:
            return question
        if use_llm:
            return rewrite_followup(self.llm, question, history)
        previous = next((turn.content for turn in reversed(history) if turn.role == "user"), "")
        return f"{previous} {question}" if _is_follow_up(question) else question

    def _generated(self, snapshot: IndexSnapshot, asked: Asked,
                   history: Sequence[Turn]) -> Generator[TextDelta, None, Answer | Unused]:
        """The LLM's answer, checked; or, when there is none to show, why not (the extractive answer's note).

        A reply that broke off mid-stream, or stopped at the token limit, is
        checked like any other (it has been shown) and noted as incomplete.
        """
        messages, sources = build_messages(
            asked.standalone, list(asked.hits), history=history, answer_lang=asked.lang,
            budget_tokens=self.settings.context_tokens, encoding=self.settings.encoding,
        )
        failure = None
        try:
            reply, finish_reason = yield from self._stream(messages, asked.timings)
        except LLMError as exc:
            reply, finish_reason, failure = exc.partial, None, exc
        if failure and not reply.strip():
            return Unused(message("llm_failed", asked.lang, reason=str(failure)), reply or None)
        cut = str(failure) if failure else (message("why_length", asked.lang) if finish_reason == "length" else None)
        checked = self._checked(snapshot, asked, reply, sources, cut)
        if isinstance(checked, Answer):
            return checked
        if failure:
            return Unused(message("llm_failed", asked.lang, reason=str(failure)), reply)
        why = message(f"why_{checked.unusable}", asked.lang, language=language_name(asked.lang))
        return Unused(message("llm_unusable", asked.lang, reason=why), reply)

    def _stream(self, messages: list[dict], timings: dict[str, float]) -> Generator[TextDelta, None, tuple[str, str]]:
        """Stream the LLM's reply, holding back text that may still turn out to be the refusal sentinel.

        Returns the whole reply and why it ended (``"stop"``, ``"length"``).
        """
        clock = time.perf_counter()
        reply = self.llm.stream(messages)
        text, shown = "", False
        for delta in reply:
            text += delta
            if not shown and could_be_refusal(text):
                continue
            yield TextDelta(text if not shown else delta)
            shown = True
        timings["generate"] = time.perf_counter() - clock
        return text, reply.finish_reason

    def _checked(self, snapshot: IndexSnapshot, asked: Asked, reply: str, sources: list[tuple[Hit, ...]],
                 cut: str | None = None) -> Answer | CheckedAnswer:
        """The generated answer with its citations checked; the check itself when the reply is unusable.

        ``cut`` says why the reply is incomplete, when it is.
        """
        if is_refusal(reply):
            return asked.answer(MODE_LLM, message("not_found", asked.lang), refused=True, model_reply=reply)
        if not reply.strip():
            return CheckedAnswer("", (), (), "empty")
        clock = time.perf_counter()
        passages = snapshot.sentences_of([hit for source in sources for hit in source])
        checked = citations.check_answer(reply.strip(), sources, self.embedder, passages, asked.lang)
        asked.timings["cite"] = time.perf_counter() - clock
        if checked.unusable:
            return checked
        incomplete = (message("incomplete", asked.lang, reason=cut),) if cut else ()
        return asked.answer(MODE_LLM, checked.text, checked.citations, incomplete + checked.notes, model_reply=reply)

    def _answering_extract(self, snapshot: IndexSnapshot, asked: Asked, query) -> Extract | None:
        """The sentences that answer the question, or None when the passages found do not answer it.

        This is also the LLM's gate (``llm_gate``): a small model cannot judge
        from its prompt whether the sources answer (it answered every
        unanswerable eval question with another city's mayor or an invented
        number, eval/README.md), while this judgment, the best sentence's
        similarity and the names the corpus never mentions, refuses them
        without costing a generation.
        """
        if not asked.hits:
            return None
        extract = self._best_sentences(snapshot, asked.standalone, query, list(asked.hits))
        return extract if self._relevant(snapshot, asked.standalone, extract.best_score) else None

    def _extractive_answer(self, asked: Asked, extract: Extract | None, unused: Unused) -> Answer:
        """The extractive answer (a refusal when there is no ``extract``), noted with why there is no generated one."""
        if extract is None:
            note = extractive_note(unused.why, asked.lang, shown=False)
            return asked.answer(MODE_EXTRACTIVE, message("not_found", asked.lang), refused=True, notes=(note,),
                                model_reply=unused.model_reply)
        note = extractive_note(unused.why, asked.lang, shown=True)
        return asked.answer(MODE_EXTRACTIVE, extract.text, tuple(extract.citations), (note,),
                            model_reply=unused.model_reply)

    def _best_sentences(self, snapshot: IndexSnapshot, question: str, query, hits: list[Hit]) -> Extract:
        """The extract of ``hits``, unless it quotes articles that mention none of the question's names.

        Then only the retrieved articles that mention them all may answer (and
        none may, when they hold no sentence of the kind asked for): "Who is the
        mayor of Daejeon?" must not get the Seongnam article's sentence about
        its mayor.
        """
        sentences = snapshot.sentences_of(hits)
        settings = self.settings
        names = QuestionNames(snapshot.store, question) if settings.name_weight > 0 else None
        own = own_language_calibration(settings.same_language_calibration, settings.same_language_unnamed_share, names)
        pulls = language_pulls(snapshot.store.centroids(), query, hits, detect_language(question),
                               settings.language_calibration, own)
        encode = self.embedder.embed_passages
        extract = extract_answer(question, query, hits, sentences, pulls, encode)
        if not snapshot.names.mention_none(question, [c.hit.passage.doc_id for c in extract.citations]):
            return extract
        naming = snapshot.names.articles_naming(question)
        named = [(hit, pull) for hit, pull in zip(hits, pulls) if hit.passage.doc_id in naming]
        if not named:
            return extract
        return extract_answer(question, query, [hit for hit, _ in named], sentences, [pull for _, pull in named], encode)

    def _relevant(self, snapshot: IndexSnapshot, question: str, best_sentence_score: float) -> bool:
        """Without an LLM to judge, refuse on a weak best sentence, or names the corpus never mentions ("Da Nang").

        One unknown name alone does not refuse: English writes "English",
        "Victorian" or "Hinduism" where the articles translate the word.
        """
        if best_sentence_score < self.settings.relevance_floor:
            return False
        unknown, named = snapshot.names.unknown_names(question)
        too_many = unknown >= self.settings.unknown_names_min
        return not (too_many and unknown >= self.settings.unknown_names_ceiling * named)

    def search(self, question: str, k: int | None = None, filters: SearchFilters | None = None) -> list[Hit]:
        """The best passages for ``question`` among the articles passing ``filters`` (all when None)."""
        # The language first (cached for retrieval): lingua loads its models holding the GIL, the question
        # encoder loads without it, so in a fresh process the two overlap (see Embedder.prepare_queries).
        detect_language(question)
        return self.retriever().search(question, k or self.settings.top_k, filters)

    # ------------------------------------------------------------ adding articles

    def add_file(self, name: str, raw: bytes) -> AddedFile:
        """Put an article file (uploaded as ``name``) into the corpus folder; call :meth:`index` afterwards.

        The parser reads it first, so nothing is written when it holds an
        unusable article (:class:`ArticleError`, naming the file).  No existing
        article is replaced: a taken name gets a number (``report-2.txt``) and
        a JSONL record whose id is taken is refused.  The write is atomic, so
        an index update running meanwhile never sees half a file.
        """
        with self._lock:
            folder = self._corpus_folder()
            taken = self._corpus_ids(folder)
            suffix = Path(name).suffix.lower()
            while True:
                target = folder / f"{_unique(_safe_stem(Path(name).stem), taken)}{suffix}"
                articles = _read_upload(Path(name).name, target.name, raw, self.settings.max_article_bytes)
                clashes = [a.doc_id for a in articles if a.doc_id in taken]
                if clashes:
                    raise ArticleError(f"{Path(name).name}: article id(s) {', '.join(map(repr, clashes))} already "
                                       "in the corpus; give the records new ids")
                if _write_new(target, raw):
                    return AddedFile(target, articles)
                taken.add(target.stem)  # another process took the name meanwhile: the next number

    def add_text(self, title: str, text: str, url: str | None = None, *, date: str | None = None,
                 lang: str | None = None) -> AddedFile:
        """Put pasted text into the corpus as a one-record JSONL file, which keeps the title, URL and date exactly.

        ``lang`` overrides language detection; ``date`` is an ISO date.
        """
        url = (url or "").strip() or None
        if url and not WEB_URL.match(url):
            raise ArticleError(f"{url}: the source URL must start with http:// or https://")
        date, lang = _checked_date(date), _checked_lang(lang)
        with self._lock:
            doc_id = _unique(_safe_stem(title), self._corpus_ids(self._corpus_folder()))
            record = {"id": doc_id, "title": title.strip() or None, "text": text, "url": url, "date": date,
                      "lang": lang}
            return self.add_file(f"{doc_id}.jsonl", json.dumps(record, ensure_ascii=False).encode() + b"\n")

    def delete_article(self, doc_id: str) -> Path:
        """Take an article out of the corpus folder; call :meth:`index` afterwards.  Returns the file it was in.

        An article file is removed; a record of a JSONL file is cut out of it
        (the file is rewritten atomically, and removed with its last record).
        """
        with self._lock:
            folder = self._corpus_folder()
            source = next((item for item in iter_sources(folder, self.settings.max_article_bytes)
                           if isinstance(item, Source) and item.doc_id == doc_id), None)
            if source is None:
                raise ArticleNotFound(f"no article {doc_id!r} in the corpus")
            if source.kind != "jsonl":
                path = Path(source.location)
                path.unlink()
                return path
            path_text, line = source.location.rsplit(":", 1)
            path = Path(path_text)
            lines = path.read_bytes().splitlines(keepends=True)
            kept = lines[: int(line) - 1] + lines[int(line):]
            if any(rest.strip() for rest in kept):
                _write_atomically(path, b"".join(kept))
            else:
                path.unlink()
            return path

    def _corpus_folder(self) -> Path:
        corpus = Path(self.settings.corpus)
        if corpus.is_file():
            raise CorpusError(f"the corpus is the single file {corpus}; adding articles needs a folder corpus "
                              "(start with --corpus DIR, and move the file into that folder)")
        return corpus  # a missing folder is reported by iter_sources

    def _corpus_ids(self, folder: Path) -> set[str]:
        """Article ids in the corpus, and the names of its files: what a new file must not reuse."""
        ids = {item.doc_id for item in iter_sources(folder, self.settings.max_article_bytes) if item.doc_id}
        return ids | {path.stem for path in folder.iterdir()}


class ArticleNotFound(UserError):
    """The article to delete is not in the corpus."""


def _checked_date(date: str | None) -> str | None:
    date = (date or "").strip() or None
    if date:
        try:
            dt.date.fromisoformat(date[:10])
        except ValueError:
            raise ArticleError(f"{date}: the date must be an ISO date, YYYY-MM-DD") from None
    return date


def _checked_lang(lang: str | None) -> str | None:
    lang = (lang or "").strip().lower() or None
    if lang and not re.fullmatch(r"[a-z]{2,3}", lang):
        raise ArticleError(f"{lang}: the language must be an ISO 639 code such as vi, id, ms or en")
    return lang


def _is_follow_up(question: str) -> bool:
    """Without an LLM: whether a question only makes sense with the previous one.

    Short is not enough: "Thị trưởng Seongnam là ai?" after a question about
    Yamanashi's governor is a new question, and borrowing the old one's words
    made it ask for a governor again.
    """
    if len(question.split()) > FOLLOW_UP_WORDS:
        return False
    return not name_phrases(question) or bool(FOLLOW_UP_OPENER.match(fold(question).strip()))


def _safe_stem(text: str) -> str:
    """A file name (without extension) from any text: letters, digits, ``-`` and ``_`` only."""
    stem = re.sub(r"[^\w-]+", "-", unicodedata.normalize("NFC", text)).strip("-_")[:80].strip("-_")
    return stem or "article"


def _unique(stem: str, taken: set[str]) -> str:
    return next(name for name in chain([stem], (f"{stem}-{i}" for i in count(2))) if name not in taken)


def _read_upload(shown_name: str, file_name: str, raw: bytes, max_bytes: int) -> list[Article]:
    """Parse an upload with the corpus reader, from a private copy, before it goes into the corpus."""
    with tempfile.TemporaryDirectory(prefix="rag-upload-") as folder:
        staged = Path(folder) / file_name
        staged.write_bytes(raw)

        def named(exc: ArticleError) -> ArticleError:
            # name the uploaded file, not the private copy; and it was never in the corpus to be removed from
            message = str(exc).replace(str(staged), shown_name).replace("; remove it from the corpus", "")
            return ArticleError(message, exc.doc_id)

        articles = []
        for item in iter_sources(staged, max_bytes):
            if isinstance(item, ArticleError):
                raise named(item)
            try:
                articles.append(parse_source(item))
            except ArticleError as exc:
                raise named(exc) from None
    if not articles:
        raise ArticleError(f"{shown_name}: no articles in it; is the file empty?")
    return articles


@contextmanager
def _written_beside(target: Path, raw: bytes) -> Iterator[Path]:
    """``raw`` in a hidden temporary file beside ``target`` (the corpus reader skips dot files), synced,
    removed afterwards whatever happens."""
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())
        yield temporary
    finally:
        temporary.unlink(missing_ok=True)


def _write_new(target: Path, raw: bytes) -> bool:
    """Write ``target`` whole, unless it exists: False then.

    A link, not a rename: a rename replaces a file of that name, and another process (a second chat server,
    an API add) may have chosen the same free name a moment before; two uploads of one name lost one.
    """
    with _written_beside(target, raw) as temporary:
        try:
            os.link(temporary, target)
        except FileExistsError:
            return False
    return True


def _write_atomically(target: Path, raw: bytes) -> None:
    """Replace ``target`` whole (a JSONL file losing one record): readers see the old file or the new one."""
    with _written_beside(target, raw) as temporary:
        os.replace(temporary, target)
