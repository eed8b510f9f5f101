"""The browser chat (``rag ui``): :func:`ui.app.launch` serves it, :mod:`ui.render` turns answers into HTML."""
