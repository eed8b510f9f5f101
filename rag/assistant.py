"""The library API: one object that the CLI, the UI, the evaluation and the tests share.

It owns the expensive parts (the embedding model, the open index) so they are
loaded once per process, and keeps the index in step with the corpus.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from functools import cached_property

from . import citations
from .answers import MODE_EXTRACTIVE, MODE_LLM, Answer, message
from .config import Settings, load_settings
from .embeddings import Embedder
from .extractive import extract_answer
from .generation import LLMClient, LLMError, Turn, build_messages, could_be_refusal, is_refusal, rewrite_followup
from .indexing import IndexReport, update_index
from .language import detect_language, name_tokens
from .retrieval import Hit, LexicalIndex, RetrievalOptions, Retriever
from .store import IndexStore, live_generation

FOLLOW_UP_WORDS = 6  # without an LLM, a question this short after another borrows its words for retrieval


class Assistant:
    def __init__(self, settings: Settings | None = None):
        self.settings = settings or load_settings()
        self._store: IndexStore | None = None
        self._lexical: LexicalIndex | None = None
        self._lock = threading.RLock()

    @cached_property
    def embedder(self) -> Embedder:
        return Embedder(self.settings.model, self.settings.model_cache)

    def index(self, *, rebuild: bool = False, progress: bool = True) -> IndexReport:
        """Bring the index up to date with the corpus (incrementally unless ``rebuild``)."""
        with self._lock:
            report = update_index(self.settings, self.embedder, rebuild=rebuild, progress=progress)
            self._reopen_if_changed()
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

    @property
    def lexical(self) -> LexicalIndex:
        with self._lock:
            store = self.store
            if self._lexical is None:
                self._lexical = LexicalIndex(store.all_passages())
            return self._lexical

    @property
    def retriever(self) -> Retriever:
        options = RetrievalOptions(self.settings.lexical_weight, self.settings.candidates)
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
        hits = self.search(standalone)
        timings["retrieve"] = time.perf_counter() - clock

        if use_llm:
            try:
                final = yield from self._generate(question, standalone, history, hits, lang, timings)
                yield final
                return
            except LLMError as exc:
                notes.append(f"The language model failed ({exc}); showing the most relevant sentences instead.")
        yield self._extract(question, standalone, hits, lang, notes, timings)

    def _standalone(self, question: str, history: Sequence[Turn], use_llm: bool) -> str:
        if not history:
            return question
        if use_llm:
            return rewrite_followup(self.llm, question, history)
        previous = next((turn.content for turn in reversed(history) if turn.role == "user"), "")
        return f"{previous} {question}" if len(question.split()) <= FOLLOW_UP_WORDS else question

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
        cited = citations.resolve(text.strip(), sources, self.embedder, lang)
        timings["cite"] = time.perf_counter() - clock
        answer.text, answer.citations, answer.notes = cited.text, cited.citations, cited.notes
        return answer

    def _extract(self, question, standalone, hits, lang, notes, timings) -> Answer:
        clock = time.perf_counter()
        answer = Answer(question, "", [], hits, MODE_EXTRACTIVE, notes=notes, standalone_question=standalone,
                        timings=timings)
        extract = extract_answer(standalone, hits, self.embedder) if hits else None
        timings["extract"] = time.perf_counter() - clock
        if extract is None or not self._relevant(standalone, extract.best_score):
            answer.text, answer.refused = message("not_found", lang), True
            return answer
        answer.text, answer.citations = extract.text, extract.citations
        answer.notes.insert(0, message("no_llm", lang))
        return answer

    def _relevant(self, question: str, best_sentence_score: float) -> bool:
        """Without an LLM to judge, refuse on a weak best sentence, or names the corpus never mentions ("Da Nang")."""
        if best_sentence_score < self.settings.relevance_floor:
            return False
        return self.lexical.unknown_share(name_tokens(question)) < self.settings.unknown_names_ceiling

    def search(self, question: str, k: int | None = None) -> list[Hit]:
        return self.retriever.search(question, k or self.settings.top_k)

