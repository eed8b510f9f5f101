"""The one base class of the failures a user can act on.

Each module raises its own error (a bad configuration, corpus, article,
index, embedding model, bundled weights or language model), with a one-line
message saying what failed and what to do.  The CLI and the browser chat
catch this class alone and show the message; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A failure whose message tells the user what to do; shown as one line, never as a traceback."""
