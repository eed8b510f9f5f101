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


@dataclass(frozen=True)
class Answer:
    """What ``Assistant.answer`` returns, in both modes; built once, when its text, citations and notes are final."""

    question: str
    text: str
    citations: tuple[Citation, ...]
    passages: tuple[Hit, ...]  # everything retrieved, cited or not
    mode: str  # MODE_LLM or MODE_EXTRACTIVE
    refused: bool = False
    notes: tuple[str, ...] = ()  # why the answer is extractive, what the citation check changed or flagged
    standalone_question: str | None = None  # the follow-up rewritten for retrieval, when it was
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    # what the model wrote, as it wrote it, whenever it was asked: also when its reply was not used, so that an
    # evaluation can say why an answer fell back (not part of the API's answer)
    model_reply: str | None = None

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "answer": self.text,
            "refused": self.refused,
            "mode": self.mode,
            "notes": list(self.notes),
            "citations": [c.to_dict() for c in self.citations],
            "passages": [hit.to_dict() for hit in self.passages],
        }


@dataclass(frozen=True)
class TextDelta:
    """A piece of the answer text as the model writes it: provisional, until the :class:`FinalAnswer`."""

    text: str


@dataclass(frozen=True)
class FinalAnswer:
    """The checked answer, always the last event: its text replaces whatever was streamed before."""

    answer: Answer


AnswerEvent = TextDelta | FinalAnswer


# What the assistant itself says, in the language of the question (English when it has no entry).
# An extractive answer's note is "<why there is no generated answer>: <what is shown instead>", or
# "<why>." alone when nothing is shown (a refusal), so that the two never disagree.
MESSAGES = {
    "not_found": {
        "en": "I could not find this in the articles.",
        "vi": "Không tìm thấy thông tin này trong các bài báo.",
        "id": "Informasi ini tidak ditemukan dalam artikel.",
        "ms": "Maklumat ini tidak ditemui dalam artikel.",
    },
    "no_llm": {
        "en": "No language model is configured",
        "vi": "Chưa cấu hình mô hình ngôn ngữ",
        "id": "Model bahasa belum dikonfigurasi",
        "ms": "Model bahasa belum dikonfigurasikan",
    },
    "llm_failed": {
        "en": "The language model failed ({reason})",
        "vi": "Mô hình ngôn ngữ gặp lỗi ({reason})",
        "id": "Model bahasa gagal ({reason})",
        "ms": "Model bahasa gagal ({reason})",
    },
    "llm_not_asked": {
        "en": "The articles found do not answer this closely enough, so the language model was not asked",
        "vi": "Các bài báo tìm được không trả lời đủ sát câu hỏi này, nên mô hình ngôn ngữ không được hỏi",
        "id": "Artikel yang ditemukan tidak cukup menjawab pertanyaan ini, jadi model bahasa tidak ditanya",
        "ms": "Artikel yang ditemui tidak cukup menjawab soalan ini, jadi model bahasa tidak ditanya",
    },
    "llm_unusable": {
        "en": "The language model's answer was not used ({reason})",
        "vi": "Câu trả lời của mô hình ngôn ngữ không được dùng ({reason})",
        "id": "Jawaban model bahasa tidak dipakai ({reason})",
        "ms": "Jawapan model bahasa tidak digunakan ({reason})",
    },
    "incomplete": {
        "en": "The language model's answer is incomplete ({reason}).",
        "vi": "Câu trả lời của mô hình ngôn ngữ chưa đầy đủ ({reason}).",
        "id": "Jawaban model bahasa tidak lengkap ({reason}).",
        "ms": "Jawapan model bahasa tidak lengkap ({reason}).",
    },
    # Why a generated answer is not used or is incomplete (rag.citations.CheckedAnswer.unusable, finish_reason):
    # the reason inside the llm_unusable / incomplete note, so in the same language as the note.
    "why_markers_only": {
        "en": "it had no text besides citation markers",
        "vi": "nó không có nội dung nào ngoài các dấu trích dẫn",
        "id": "tidak ada teks selain penanda kutipan",
        "ms": "tiada teks selain penanda petikan",
    },
    "why_foreign": {  # only ever said of the question's own language
        "en": "it is not written in {language}",
        "vi": "nó không được viết bằng tiếng Việt",
        "id": "tidak ditulis dalam bahasa Indonesia",
        "ms": "tidak ditulis dalam bahasa Melayu",
    },
    "why_uncited": {
        "en": "none of its sentences cites a source",
        "vi": "không câu nào của nó dẫn nguồn",
        "id": "tidak satu pun kalimatnya mengutip sumber",
        "ms": "tiada satu pun ayatnya memetik sumber",
    },
    "why_unbacked": {
        "en": "none of its claims is backed by its sources",
        "vi": "không nhận định nào của nó được các nguồn xác nhận",
        "id": "tidak satu pun klaimnya didukung sumbernya",
        "ms": "tiada satu pun dakwaannya disokong sumbernya",
    },
    "why_empty": {
        "en": "it was empty",
        "vi": "nó trống rỗng",
        "id": "jawabannya kosong",
        "ms": "jawapannya kosong",
    },
    "why_length": {
        "en": "it reached its token limit",
        "vi": "nó đã chạm giới hạn token",
        "id": "mencapai batas token",
        "ms": "mencapai had token",
    },
    # The notes of the claim check (rag.citations): why a sentence is flagged ⚠, and markers taken out.
    "claim_missing_names": {
        "en": "its source does not mention {items}",
        "vi": "nguồn của câu này không nhắc đến {items}",
        "id": "sumbernya tidak menyebut {items}",
        "ms": "sumbernya tidak menyebut {items}",
    },
    "claim_missing_numbers": {
        "en": "its source does not give {items}",
        "vi": "nguồn của câu này không nêu {items}",
        "id": "sumbernya tidak memuat {items}",
        "ms": "sumbernya tidak memberikan {items}",
    },
    "claim_missing_roles": {
        "en": "its source names no {items}",
        "vi": "nguồn của câu này không nêu chức danh {items}",
        "id": "sumbernya tidak menyebut jabatan {items}",
        "ms": "sumbernya tidak menyebut jawatan {items}",
    },
    # the offices of rag.answer_types.ROLES, as the claim check's notes name them
    "role_governor": {"en": "governor", "vi": "thống đốc", "id": "gubernur", "ms": "gabenor"},
    "role_mayor": {"en": "mayor", "vi": "thị trưởng", "id": "wali kota", "ms": "datuk bandar"},
    "role_prime_minister": {"en": "prime minister", "vi": "thủ tướng", "id": "perdana menteri", "ms": "perdana menteri"},
    "role_ambassador": {"en": "ambassador", "vi": "đại sứ", "id": "duta besar", "ms": "duta besar"},
    "claim_misplaced_numbers": {
        "en": "its source gives {items} about something else",
        "vi": "nguồn của câu này nêu {items} về một điều khác",
        "id": "sumbernya memuat {items} tentang hal lain",
        "ms": "sumbernya memberikan {items} tentang perkara lain",
    },
    "claim_unsaid": {
        "en": "its source does not say this",
        "vi": "nguồn của câu này không nói điều đó",
        "id": "sumbernya tidak mengatakan hal itu",
        "ms": "sumbernya tidak menyatakan perkara itu",
    },
    "claim_uncited": {
        "en": "it cites no source",
        "vi": "câu này không dẫn nguồn",
        "id": "kalimat ini tidak mengutip sumber",
        "ms": "ayat ini tidak memetik sumber",
    },
    "markers_no_source": {
        "en": "Removed citation marker(s) {markers}: no such source.",
        "vi": "Đã bỏ dấu trích dẫn {markers}: không có nguồn đó.",
        "id": "Penanda kutipan {markers} dihapus: sumber itu tidak ada.",
        "ms": "Penanda petikan {markers} dibuang: sumber itu tiada.",
    },
    "marker_not_backing": {
        "en": "Removed citation marker(s) {markers} from “{sentence}”: that source does not say it.",
        "vi": "Đã bỏ dấu trích dẫn {markers} khỏi “{sentence}”: nguồn đó không nói điều này.",
        "id": "Penanda kutipan {markers} dihapus dari “{sentence}”: sumber itu tidak menyatakannya.",
        "ms": "Penanda petikan {markers} dibuang daripada “{sentence}”: sumber itu tidak menyatakannya.",
    },
    "markers_not_backing": {
        "en": "Removed citation marker(s) {markers} from “{sentence}”: those sources do not say it.",
        "vi": "Đã bỏ dấu trích dẫn {markers} khỏi “{sentence}”: các nguồn đó không nói điều này.",
        "id": "Penanda kutipan {markers} dihapus dari “{sentence}”: sumber-sumber itu tidak menyatakannya.",
        "ms": "Penanda petikan {markers} dibuang daripada “{sentence}”: sumber-sumber itu tidak menyatakannya.",
    },
    "extracted": {
        "en": "these are the most relevant sentences from the articles, quoted in their original language.",
        "vi": "đây là những câu liên quan nhất trích từ các bài báo, giữ nguyên ngôn ngữ gốc.",
        "id": "berikut kalimat paling relevan dari artikel, dikutip dalam bahasa aslinya.",
        "ms": "berikut ayat paling relevan daripada artikel, dipetik dalam bahasa asalnya.",
    },
}


def message(key: str, lang: str, **values: str) -> str:
    texts = MESSAGES[key]
    return texts.get(lang, texts["en"]).format(**values)


def role_name(role: str, lang: str) -> str:
    """An office of ``rag.answer_types.ROLES`` ("prime minister") as ``lang`` writes it."""
    return message(f"role_{role.replace(' ', '_')}", lang)


def extractive_note(why: str, lang: str, *, shown: bool) -> str:
    """The one note of an extractive answer: why there is no generated answer, and what is shown instead."""
    return f"{why}: {message('extracted', lang)}" if shown else f"{why}."
