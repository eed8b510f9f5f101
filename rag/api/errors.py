"""Every failure as JSON with the status that says whose fault it is, in the shape OpenAI clients parse.

``{"error": {"message", "type", "param", "code"}}`` is what the ``openai``
client reads into its exceptions, so a chat client shows our message instead
of a bare status.  Bad input is 4xx, never 500: a library :class:`UserError`
is mapped by kind, and a 500 means a bug (its traceback goes to the log, not
to the client).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..assistant import ArticleNotFound
from ..corpus import ArticleError, CorpusError
from ..errors import UserError
from ..filters import FilterError
from ..store import StoreError

log = logging.getLogger("rag.api")

TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
         404: "not_found_error", 405: "invalid_request_error", 409: "conflict_error", 413: "invalid_request_error",
         415: "invalid_request_error", 422: "invalid_request_error", 503: "service_unavailable"}


class ApiError(Exception):
    """A failure with its HTTP status and a message the caller can act on."""

    def __init__(self, status: int, message: str, code: str | None = None, param: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.headers = status, message, code, param, headers


def error_body(status: int, message: str, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": TYPES.get(status, "server_error"), "param": param, "code": code}}


def status_of(exc: UserError) -> int:
    """The status of a library failure: which part of the request, or of the server, is at fault."""
    if isinstance(exc, ArticleNotFound):
        return 404
    if isinstance(exc, (ArticleError, FilterError)):
        return 422
    if isinstance(exc, CorpusError):
        return 409  # e.g. a single-file corpus: the server is not set up for writes
    if isinstance(exc, StoreError):
        return 503
    return 400


def install(app: FastAPI) -> None:
    """Register the handlers that turn every exception into an error body."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.status, exc.message, exc.code, exc.param), exc.status, exc.headers)

    @app.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError) -> JSONResponse:
        status = status_of(exc)
        return JSONResponse(error_body(status, str(exc), type(exc).__name__), status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = exc.errors()
        if any(problem.get("type") == "json_invalid" for problem in problems):
            return JSONResponse(error_body(400, "the request body is not valid JSON", "invalid_json"), 400)
        first = problems[0] if problems else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
        summary = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg')}"
                            for e in problems)
        return JSONResponse(error_body(422, summary or "invalid request", "invalid_request", where or None), 422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(error_body(exc.status_code, str(exc.detail)), exc.status_code, exc.headers)

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected failure on %s %s", request.method, request.url.path)
        return JSONResponse(error_body(500, "internal error; see the server log"), 500)
