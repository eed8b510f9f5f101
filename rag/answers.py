"""The records an answer is made of, shared by the answerers, the CLI, the UI and the evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field

from .retrieval import Hit

MODE_LLM = "llm"
MODE_EXTRACTIVE = "extractive"


@dataclass(frozen=True)
class Citation:
    """Source ``[n]`` of an answer: the passage it points to and the part of it that was used."""

    n: int
    hit: Hit
    quote: str  # the cited sentence(s) of the passage; the whole passage when unknown
    supported: bool = True  # False when no answer sentence citing it is backed by the passage

    def to_dict(self) -> dict:
        p = self.hit.passage
        return {
            "n": self.n,
            "doc_id": p.doc_id,
            "chunk_id": p.chunk_id,
            "title": p.title,
            "url": p.url,
            "lang": p.lang,
            "date": p.date,
            "text": self.quote,
            "passage": p.text,
            "supported": self.supported,
        }


@dataclass
class Answer:
    """What ``Assistant.answer`` returns, in both modes."""

    question: str
    text: str
    citations: list[Citation]
    passages: list[Hit]  # everything retrieved, cited or not
    mode: str  # MODE_LLM or MODE_EXTRACTIVE
    refused: bool = False
    notes: list[str] = field(default_factory=list)  # e.g. "no language model configured", endpoint errors
    standalone_question: str | None = None  # the follow-up rewritten for retrieval, when it was
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "answer": self.text,
            "refused": self.refused,
            "mode": self.mode,
            "notes": self.notes,
            "citations": [c.to_dict() for c in self.citations],
            "passages": [hit.to_dict() for hit in self.passages],
        }


# What the assistant itself says, in the language of the question (English when it has no entry).
MESSAGES = {
    "not_found": {
        "en": "I could not find this in the articles.",
        "vi": "Không tìm thấy thông tin này trong các bài báo.",
        "id": "Informasi ini tidak ditemukan dalam artikel.",
        "ms": "Maklumat ini tidak ditemui dalam artikel.",
    },
    "no_llm": {
        "en": "No language model is configured: these are the most relevant sentences from the articles, "
        "quoted in their original language.",
        "vi": "Chưa cấu hình mô hình ngôn ngữ: đây là những câu liên quan nhất trích từ các bài báo, "
        "giữ nguyên ngôn ngữ gốc.",
        "id": "Model bahasa belum dikonfigurasi: berikut kalimat paling relevan dari artikel, "
        "dikutip dalam bahasa aslinya.",
        "ms": "Model bahasa belum dikonfigurasikan: berikut ayat paling relevan daripada artikel, "
        "dipetik dalam bahasa asalnya.",
    },
}


def message(key: str, lang: str) -> str:
    texts = MESSAGES[key]
    return texts.get(lang, texts["en"])
