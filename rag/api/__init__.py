"""The HTTP server of ``rag serve``: a versioned JSON API (OpenAI-compatible chat included) beside the browser chat.

Modules, one concept each: :mod:`.errors` (every failure as an OpenAI-shaped
JSON body with its status), :mod:`.security` (bearer keys and roles),
:mod:`.service` (what the routes share: the assistant, the keys, readiness),
:mod:`.chat` (``/v1/models``, ``/v1/chat/completions``), :mod:`.corpus`
(``/v1/search``, ``/v1/articles``) and :mod:`.app` (the one FastAPI app, the
Gradio chat mounted at ``/``, and ``serve``).
"""
