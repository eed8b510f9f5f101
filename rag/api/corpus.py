"""The articles behind the answers: search them, list them, add and delete them.

Each change goes into the corpus folder through the library (the parser
checks an upload before anything is written; writes are atomic), then the
index is updated incrementally, and the response says what changed in both.
A file is refused by its size (413) and its type (415) before it is parsed.
"""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from ..corpus import ARTICLE_SUFFIXES, JSONL_SUFFIXES
from ..indexing import IndexReport
from .errors import ApiError
from .schemas import ArticleIn, SearchRequest, filters_of
from .security import reader, writer
from .service import Service

router = APIRouter(prefix="/v1", tags=["articles"])
UPLOAD_SUFFIXES = ARTICLE_SUFFIXES + JSONL_SUFFIXES
# Declared content types of an uploaded part that can hold an article (browsers and curl send these for the suffixes).
TEXT_TYPES = ("text/", "application/json", "application/jsonl", "application/x-ndjson", "application/octet-stream")
UPLOAD_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": ArticleIn.model_json_schema()},
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
            "file": {"type": "string", "format": "binary",
                     "description": "a .txt, .md, .html or .jsonl article file"}}}},
    },
}


def service_of(request: Request) -> Service:
    service: Service = request.app.state.service
    service.require_ready()
    return service


@router.post("/search", summary="The passages that best match a query, with their scores",
             dependencies=[Depends(reader)])
def search(body: SearchRequest, request: Request) -> dict:
    service = service_of(request)
    hits = service.assistant.search(body.query, body.k, filters=filters_of(body.filters))
    return {"object": "list", "query": body.query,
            "data": [{**hit.to_dict(), "date": hit.passage.date} for hit in hits]}


@router.get("/articles", summary="The indexed articles, a page at a time", dependencies=[Depends(reader)])
def list_articles(request: Request, offset: int = Query(0, ge=0), limit: int = Query(50, ge=1, le=500)) -> dict:
    store = service_of(request).assistant.store
    total, page = store.manifest.articles, store.articles(offset, limit)  # one version: the store is a snapshot
    following = offset + limit if offset + limit < total else None
    return {"object": "list", "total": total, "offset": offset, "limit": limit, "next_offset": following,
            "data": [{"id": a.doc_id, "title": a.title, "lang": a.lang, "url": a.url, "date": a.date}
                     for a in page]}


@router.post("/articles", status_code=201, dependencies=[Depends(writer)], openapi_extra={"requestBody": UPLOAD_BODY},
             summary="Add an article (a file, or JSON) and update the index")
async def add_article(request: Request) -> dict:
    service = service_of(request)
    limit = service.assistant.settings.max_article_bytes
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        article = _article_of(await request.body())
        if len(article.text.encode()) > limit:
            raise _too_large(limit)
        added = await run_in_threadpool(service.assistant.add_text, article.title, article.text, article.url,
                                        date=article.date, lang=article.lang)
    elif kind == "multipart/form-data":
        name, raw = await _uploaded_file(request, limit)
        added = await run_in_threadpool(service.assistant.add_file, name, raw)
    else:
        raise ApiError(415, "send the article as application/json {title, text, url, date, lang}, or a file as "
                            "multipart/form-data (field 'file')", "unsupported_media_type")
    report = await run_in_threadpool(service.update_index)
    return {"added": [_article_record(a) for a in added.articles], "file": added.path.name,
            "index": index_record(report)}


@router.delete("/articles/{article_id}", dependencies=[Depends(writer)],
               summary="Delete an article from the corpus and the index")
def delete_article(article_id: str, request: Request) -> dict:
    service = service_of(request)
    path = service.assistant.delete_article(article_id)
    return {"deleted": article_id, "file": path.name, "index": index_record(service.update_index())}


def _article_of(body: bytes) -> ArticleIn:
    try:
        data = json.loads(body)
    except ValueError:
        raise ApiError(400, "the request body is not valid JSON", "invalid_json") from None
    try:
        return ArticleIn.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
        raise ApiError(422, problems, "invalid_article") from None


async def _uploaded_file(request: Request, limit: int) -> tuple[str, bytes]:
    """The one uploaded file's name and bytes, refused when too large or not an article type."""
    form = await request.form(max_files=1, max_fields=10, max_part_size=limit + 1)
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise ApiError(422, "a multipart upload needs one file in the field 'file'", "no_file", "file")
    name = Path(upload.filename).name
    declared = (upload.content_type or "").lower()
    if Path(name).suffix.lower() not in UPLOAD_SUFFIXES or (declared and not declared.startswith(TEXT_TYPES)):
        raise ApiError(415, f"{name} ({declared or 'no type'}): unsupported file type; use .txt, .md, .html or "
                            ".jsonl", "unsupported_media_type", "file")
    raw = await upload.read(limit + 1)
    if len(raw) > limit:
        raise _too_large(limit)
    return name, raw


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"the article is larger than max_article_bytes ({limit} bytes)", "too_large")


def _article_record(article) -> dict:
    return {"id": article.doc_id, "title": article.title, "lang": article.lang, "url": article.url,
            "date": article.date}


def index_record(report: IndexReport) -> dict:
    """What an update did to the index, as the ``rag index`` summary says it."""
    return {"added": report.added, "changed": report.changed, "removed": report.removed,
            "unchanged": report.unchanged, "articles": report.total_articles, "chunks": report.total_chunks,
            "embedded_chunks": report.embedded_chunks, "seconds": round(report.seconds, 3),
            "skipped": report.errors, "summary": report.summary()}
