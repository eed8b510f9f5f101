"""The browser chat, served by `rag serve` (:mod:`rag.api.app` mounts it at `/`); :mod:`ui.render` turns answers into HTML."""
