"""The library API: one object that the CLI, the UI, the evaluation and the tests share.

It owns the expensive parts (the embedding model, the open index) so they are
loaded once per process, and keeps the index in step with the corpus.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import time
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import chain, count
from pathlib import Path

from . import citations
from .answers import MODE_EXTRACTIVE, MODE_LLM, Answer, message
from .config import Settings, load_settings
from .corpus import Article, ArticleError, CorpusError, iter_sources, parse_source
from .embeddings import Embedder
from .extractive import Extract, extract_answer, language_pulls
from .generation import LLMClient, LLMError, Turn, build_messages, could_be_refusal, is_refusal, rewrite_followup
from .indexing import IndexReport, update_index
from .language import NameVocabulary, detect_language, fold, name_phrases
from .retrieval import Hit, LexicalIndex, RetrievalOptions, Retriever, centroids_of
from .store import IndexStore, SentenceVectors, live_generation

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


class Assistant:
    def __init__(self, settings: Settings | None = None):
        self.settings = settings or load_settings()
        self._store: IndexStore | None = None
        self._lexical: LexicalIndex | None = None
        self._names: NameVocabulary | None = None
        self._lock = threading.RLock()

    @cached_property
    def embedder(self) -> Embedder:
        return Embedder.from_settings(self.settings)

    def index(self, *, rebuild: bool = False, progress: bool = True) -> IndexReport:
        """Bring the index up to date with the corpus (incrementally unless ``rebuild``); ready the question encoder."""
        with self._lock:
            report = update_index(self.settings, self.embedder, rebuild=rebuild, progress=progress)
            self._reopen_if_changed()
        self.embedder.prepare_queries(progress=progress)
        return report

    @property
    def store(self) -> IndexStore:
        """The live index, reopened when another process has published a newer generation."""
        with self._lock:
            self._reopen_if_changed()
            if self._store is None:
                self._store = IndexStore.open(self.settings.index)
            return self._store

    def _reopen_if_changed(self) -> None:
        if self._store is not None and self._store.generation != live_generation(self.settings.index):
            self._store.close()
            self._store = None
            self._lexical = None
            self._names = None

    @property
    def lexical(self) -> LexicalIndex:
        with self._lock:
            store = self.store
            if self._lexical is None:
                self._lexical = LexicalIndex.of_store(store)
            return self._lexical

    @property
    def names(self) -> NameVocabulary:
        with self._lock:
            store = self.store
            if self._names is None:
                self._names = NameVocabulary({a.doc_id: f"{a.title}\n{a.text}" for a in store.all_articles()})
            return self._names

    @property
    def retriever(self) -> Retriever:
        options = RetrievalOptions.from_settings(self.settings)
        return Retriever(self.store, self.embedder, self.lexical if options.lexical_weight > 0 else None, options)

    @cached_property
    def llm(self) -> LLMClient:
        return LLMClient(self.settings)

    def answer(self, question: str, history: Sequence[Turn] = (), *, use_llm: bool | None = None) -> Answer:
        """Answer ``question`` from the articles, with citations (see :meth:`answer_stream`)."""
        *_, final = self.answer_stream(question, history, use_llm=use_llm)
        return final

    def answer_stream(
        self, question: str, history: Sequence[Turn] = (), *, use_llm: bool | None = None
    ) -> Iterator[str | Answer]:
        """Yield the answer text as it is generated (``str`` pieces), then the finished :class:`Answer`.

        ``use_llm`` defaults to whether an endpoint is configured.  When the
        endpoint fails, the answer falls back to extraction, with a note.
        """
        use_llm = self.settings.llm_configured if use_llm is None else use_llm
        lang = detect_language(question)
        lang = "en" if lang == "und" else lang
        timings: dict[str, float] = {}
        notes: list[str] = []
        clock = time.perf_counter()

        standalone = self._standalone(question, history, use_llm)
        timings["rewrite"] = time.perf_counter() - clock
        clock = time.perf_counter()
        query = self.embedder.embed_query(standalone)
        hits = self.retriever.search_embedded(standalone, query, self.settings.top_k)
        timings["retrieve"] = time.perf_counter() - clock

        if use_llm:
            try:
                final = yield from self._generate(question, standalone, history, hits, lang, timings)
                yield final
                return
            except LLMError as exc:
                notes.append(f"The language model failed ({exc}); showing the most relevant sentences instead.")
        yield self._extract(question, standalone, query, hits, lang, notes, timings)

    def _standalone(self, question: str, history: Sequence[Turn], use_llm: bool) -> str:
        if not history:
            return question
        if use_llm:
            return rewrite_followup(self.llm, question, history)
        previous = next((turn.content for turn in reversed(history) if turn.role == "user"), "")
        return f"{previous} {question}" if _is_follow_up(question) else question

    def _generate(self, question, standalone, history, hits, lang, timings) -> Iterator[str]:
        """Stream the LLM's answer; hold back text that may still turn out to be the refusal sentinel."""
        clock = time.perf_counter()
        messages, sources = build_messages(
            standalone, hits, history=history, answer_lang=lang,
            budget_tokens=self.settings.context_tokens, encoding=self.settings.encoding,
        )
        text, shown = "", False
        for delta in self.llm.stream(messages):
            text += delta
            if not shown and could_be_refusal(text):
                continue
            yield text if not shown else delta
            shown = True
        timings["generate"] = time.perf_counter() - clock
        answer = Answer(question, "", [], hits, MODE_LLM, standalone_question=standalone, timings=timings)
        if is_refusal(text) or not text.strip():
            answer.text, answer.refused = message("not_found", lang), True
            return answer
        clock = time.perf_counter()
        cited = citations.resolve(text.strip(), sources, self.embedder, self._sentences_of(sources), lang)
        timings["cite"] = time.perf_counter() - clock
        answer.text, answer.citations, answer.notes = cited.text, cited.citations, cited.notes
        return answer

    def _extract(self, question, standalone, query, hits, lang, notes, timings) -> Answer:
        clock = time.perf_counter()
        answer = Answer(question, "", [], hits, MODE_EXTRACTIVE, notes=notes, standalone_question=standalone,
                        timings=timings)
        extract = self._best_sentences(standalone, query, hits) if hits else None
        timings["extract"] = time.perf_counter() - clock
        if extract is None or not self._relevant(standalone, extract.best_score):
            answer.text, answer.refused = message("not_found", lang), True
            return answer
        answer.text, answer.citations = extract.text, extract.citations
        answer.notes.insert(0, message("no_llm", lang))
        return answer

    def _best_sentences(self, question: str, query, hits: list[Hit]) -> Extract:
        """The extract of ``hits``, unless it quotes articles that mention none of the question's names.

        Then only the retrieved articles that mention them all may answer (and
        none may, when they hold no sentence of the kind asked for): "Who is the
        mayor of Daejeon?" must not get the Seongnam article's sentence about
        its mayor.
        """
        sentences = self._sentences_of(hits)
        pulls = language_pulls(centroids_of(self.store), query, hits, detect_language(question),
                               self.settings.language_calibration, self.settings.same_language_calibration)
        extract = extract_answer(question, query, hits, sentences, pulls)
        if not self.names.mention_none(question, [c.hit.passage.doc_id for c in extract.citations]):
            return extract
        naming = self.names.articles_naming(question)
        named = [(hit, pull) for hit, pull in zip(hits, pulls) if hit.passage.doc_id in naming]
        if not named:
            return extract
        return extract_answer(question, query, [hit for hit, _ in named], sentences, [pull for _, pull in named])

    def _relevant(self, question: str, best_sentence_score: float) -> bool:
        """Without an LLM to judge, refuse on a weak best sentence, or names the corpus never mentions ("Da Nang").

        One unknown name alone does not refuse: English writes "English",
        "Victorian" or "Hinduism" where the articles translate the word.
        """
        if best_sentence_score < self.settings.relevance_floor:
            return False
        unknown, named = self.names.unknown_names(question)
        too_many = unknown >= self.settings.unknown_names_min
        return not (too_many and unknown >= self.settings.unknown_names_ceiling * named)

    def _sentences_of(self, hits: list[Hit]) -> dict[int, SentenceVectors]:
        return self.store.sentence_vectors(hit.passage.row_id for hit in hits)

    def search(self, question: str, k: int | None = None) -> list[Hit]:
        return self.retriever.search(question, k or self.settings.top_k)

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
            target = folder / f"{_unique(_safe_stem(Path(name).stem), taken)}{suffix}"
            articles = _read_upload(Path(name).name, target.name, raw, self.settings.max_article_bytes)
            clashes = [a.doc_id for a in articles if a.doc_id in taken]
            if clashes:
                raise ArticleError(f"{Path(name).name}: article id(s) {', '.join(map(repr, clashes))} already in "
                                   "the corpus; give the records new ids")
            _write_atomically(target, raw)
            return AddedFile(target, articles)

    def add_text(self, title: str, text: str, url: str | None = None) -> AddedFile:
        """Put pasted text into the corpus as a one-record JSONL file, which keeps the title and URL exactly."""
        url = (url or "").strip() or None
        if url and not WEB_URL.match(url):
            raise ArticleError(f"{url}: the source URL must start with http:// or https://")
        with self._lock:
            doc_id = _unique(_safe_stem(title), self._corpus_ids(self._corpus_folder()))
            record = {"id": doc_id, "title": title.strip() or None, "text": text, "url": url}
            return self.add_file(f"{doc_id}.jsonl", json.dumps(record, ensure_ascii=False).encode() + b"\n")

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


def _write_atomically(target: Path, raw: bytes) -> None:
    """Write to a hidden temporary file (the corpus reader skips dot files), then rename it into place."""
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
