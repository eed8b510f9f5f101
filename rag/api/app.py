"""The one server of ``rag serve``: the API under ``/v1``, OpenAPI docs at ``/docs``, the browser chat at ``/``.

Both halves share one :class:`~rag.api.service.Service` (one assistant) and
one set of keys: the API takes
them as bearer tokens, the chat page as a sign-in form (key name and secret).
"""

from __future__ import annotations

import ipaddress
import logging
import threading

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ..assistant import Assistant
from ..auth import Keyring
from ..config import Settings
from ..errors import UserError
from . import chat, corpus, errors
from .errors import ApiError, error_body
from .service import Service

log = logging.getLogger("rag.api")
FORM_OVERHEAD = 64 * 1024  # bytes of a multipart body beyond the file itself


class ServeRefused(UserError):
    """The server would expose writes to the network without sign-in."""


def create_app(service: Service, *, ui: bool = True) -> FastAPI:
    """The FastAPI app over ``service``; call ``service.warm_up`` (or :func:`start_warming`) to make it ready."""
    app = FastAPI(title="rag-news", version="1", docs_url="/docs", redoc_url=None,
                  summary="Ask a multilingual news corpus; cited answers, OpenAI-compatible chat",
                  openapi_tags=[{"name": "chat (OpenAI-compatible)"}, {"name": "articles"}, {"name": "health"}])
    app.state.service = service
    errors.install(app)
    body_limit = service.assistant.settings.max_article_bytes + FORM_OVERHEAD

    @app.middleware("http")
    async def refuse_large_bodies(request: Request, call_next):
        """A body larger than any article is refused before it is read."""
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > body_limit:
            return JSONResponse(error_body(413, f"the request body is larger than {body_limit} bytes", "too_large"),
                                413)
        return await call_next(request)

    @app.get("/healthz", tags=["health"], summary="The process answers")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="The index is open and the model loaded (503 before)")
    def readyz() -> dict:
        service.require_ready()
        return {"status": "ready", "mode": "llm" if service.assistant.settings.llm_configured else "extractive",
                "auth": bool(service.keyring)}

    app.include_router(chat.router)
    app.include_router(corpus.router)

    @app.api_route("/v1/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    def unknown(path: str) -> None:  # else the chat page, mounted at "/", would answer with its own 404
        raise ApiError(404, f"no such API route: /v1/{path}", "not_found")

    if ui:
        mount_chat(app, service)
    return app


def mount_chat(app: FastAPI, service: Service) -> None:
    import gradio as gr  # imported here: Gradio takes seconds to import

    from ui.app import CSS, HEAD, THEME, ChatApp, build_app

    chat_app = ChatApp(service.assistant, keyring=service.keyring)
    demo = build_app(chat_app)
    auth = chat_app.login if service.keyring else None
    gr.mount_gradio_app(app, demo, path="/", auth=auth, auth_message="Sign in with the name and the secret of an "
                        "API key: a read key can ask, a write key can also add articles.", theme=THEME, css=CSS,
                        head=HEAD, ssr_mode=False, footer_links=["gradio"], run_history=False, show_error=True)


def start_warming(service: Service) -> threading.Thread:
    thread = threading.Thread(target=service.warm_up, name="warm-up", daemon=True)
    thread.start()
    return thread


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def check_exposure(host: str, keyring: Keyring, no_auth: bool) -> None:
    """Refuse to serve writes to the network without keys, unless ``--no-auth`` says so."""
    if not keyring and not no_auth and not is_loopback(host):
        raise ServeRefused(f"serving on {host} without API keys would let anyone on the network add and delete "
                           "articles; set RAG_API_KEYS (or api_keys_file), or pass --no-auth to serve openly")


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 7860, *, no_auth: bool = False) -> None:
    """``rag serve``: run until interrupted."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")  # uvicorn's style
    keyring = Keyring() if no_auth else Keyring.from_settings(settings)
    check_exposure(host, keyring, no_auth)
    service = Service(Assistant(settings), keyring)
    app = create_app(service)
    start_warming(service)
    log.info("serving on http://%s:%d (%s)", host, port, "keys required" if keyring else "no sign-in")
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=5)


class ThreadedServer:
    """The app served by uvicorn on a thread of this process: for tests and benchmarks that need a real server."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        self.host = host
        self.port = port or free_port(host)
        self._server = uvicorn.Server(uvicorn.Config(app, host=host, port=self.port, log_level="warning",
                                                     timeout_graceful_shutdown=2))
        self._thread = threading.Thread(target=self._server.run, name="uvicorn", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ThreadedServer:
        """Serve; returns once the server accepts connections."""
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise OSError(f"the server did not start on {self.url}")
            self._thread.join(0.02)
        return self

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)

    __enter__ = start

    def __exit__(self, *exc) -> None:
        self.close()


def free_port(host: str = "127.0.0.1") -> int:
    import socket

    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]
