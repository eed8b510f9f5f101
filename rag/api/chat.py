"""The assistant as an OpenAI-compatible model, ``rag-news``: ``/v1/models`` and ``/v1/chat/completions``.

The last user message is the question; the messages before it are the
conversation, for follow-ups.  The reply text keeps the ``[n]`` markers, and
the citations travel in the extension field ``rag`` of the response (and of
the final stream chunk): ``{"mode", "refused", "notes",
"standalone_question", "citations", "passages"}``, the records of
``rag ask --json``.

A stream sends only the *checked* answer.  The library streams the model's
text as it is written, but the citation check may still flag, move or drop
markers, or replace the whole answer by the extractive one, and an OpenAI
stream cannot take text back; so the text is sent once it is final, in
word-sized chunks, after the role chunk that opens every OpenAI stream.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from ..answers import Answer, FinalAnswer
from ..generation import Turn
from .errors import ApiError
from .schemas import ChatMessage, ChatRequest, filters_of
from .security import reader
from .service import Service

MODEL = "rag-news"
OWNER = "rag-news"
router = APIRouter(prefix="/v1", tags=["chat (OpenAI-compatible)"], dependencies=[Depends(reader)])
PIECES = re.compile(r"\s*\S+|\s+")


@router.get("/models", summary="The one model this server is")
def models() -> dict:
    return {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": OWNER}]}


@router.get("/models/{model}", summary="The model, by name")
def model(model: str) -> dict:
    if model != MODEL:
        raise ApiError(404, f"no model {model!r}; this server is {MODEL!r}", "model_not_found", "model")
    return {"id": MODEL, "object": "model", "created": 0, "owned_by": OWNER}


@router.post("/chat/completions", summary="Answer the last user message from the articles, with citations")
def chat_completions(body: ChatRequest, request: Request):
    service: Service = request.app.state.service
    service.require_ready()
    if body.model != MODEL:
        raise ApiError(404, f"no model {body.model!r}; this server is {MODEL!r}", "model_not_found", "model")
    question, history = conversation(body.messages)
    events = service.assistant.answer_stream(question, history, filters=filters_of(body.filters))
    answers = answers_of(events)
    first = next(answers)  # retrieval runs here: a bad filter or a closed index is still an error status
    completion = Completion.start()
    if body.stream:
        return StreamingResponse(completion.sse(first, answers), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    final = first if first is not None else next(answer for answer in answers if answer is not None)
    return completion.whole(final)


def conversation(messages: list[ChatMessage]) -> tuple[str, list[Turn]]:
    """The question (the last message, which must be the user's) and the user and assistant turns before it."""
    last = messages[-1]
    if last.role != "user" or not last.text.strip():
        raise ApiError(422, "the last message must be the user's question, with text", "no_question", "messages")
    history = [Turn(m.role, m.text) for m in messages[:-1] if m.role in ("user", "assistant") and m.text.strip()]
    return last.text.strip(), history


def answers_of(events: Iterator) -> Iterator[Answer | None]:
    """``None`` for each piece of provisional text of an answer (a sign of life), then the final :class:`Answer`.

    An index update does not hold the answer up: it reads its own snapshot of the index.
    """
    for event in events:
        if isinstance(event, FinalAnswer):
            yield event.answer
            return
        yield None


def extension(answer: Answer) -> dict:
    """The ``rag`` field: how the answer was made, and what its ``[n]`` markers point to."""
    record = answer.to_dict()
    return {"mode": answer.mode, "refused": answer.refused, "notes": record["notes"],
            "standalone_question": answer.standalone_question, "citations": record["citations"],
            "passages": record["passages"]}


class Completion:
    """One response's id and time, shared by all its chunks as in OpenAI's streams."""

    def __init__(self, id: str, created: int):
        self.id, self.created = id, created

    @classmethod
    def start(cls) -> Completion:
        return cls(f"chatcmpl-{uuid.uuid4().hex}", int(time.time()))

    def whole(self, answer: Answer) -> dict:
        message = {"role": "assistant", "content": answer.text}
        return {"id": self.id, "object": "chat.completion", "created": self.created, "model": MODEL,
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
                "usage": None, "rag": extension(answer)}

    def chunk(self, delta: dict, finish_reason: str | None = None, **extra) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        data = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": MODEL,
                "choices": [choice], **extra}
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

    def sse(self, first: Answer | None, rest: Iterator[Answer | None]) -> Iterator[str]:
        """``data: {chunk}`` events, as OpenAI sends them: role, content pieces, finish with ``rag``, ``[DONE]``."""
        yield self.chunk({"role": "assistant", "content": ""})
        answer = first if first is not None else next(answer for answer in rest if answer is not None)
        # the rest in one write: the same events, without a trip through the thread pool for each word
        pieces = [self.chunk({"content": piece}) for piece in PIECES.findall(answer.text)]
        yield "".join([*pieces, self.chunk({}, "stop", rag=extension(answer)), "data: [DONE]\n\n"])
