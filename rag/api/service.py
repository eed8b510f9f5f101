"""What every route and the chat page share: one assistant, the keys, and whether the server is ready.

The server answers at once, but is only *ready* when the index is open and
the embedding model loaded: :meth:`Service.warm_up` (a background thread at
start) brings the index up to date, building it on first start, then opens
it.  Until then ``/readyz`` and every ``/v1`` route that needs the index say
503, with a ``Retry-After``, instead of making a request wait a minute.
"""

from __future__ import annotations

import logging
import sys
import threading

from ..assistant import Assistant
from ..auth import Keyring
from ..errors import UserError
from ..indexing import IndexReport
from .errors import ApiError

log = logging.getLogger("rag.api")
RETRY_AFTER = "5"  # seconds a client should wait before asking again while the server warms up


class Service:
    def __init__(self, assistant: Assistant, keyring: Keyring):
        self.assistant = assistant
        self.keyring = keyring
        self.failure: str | None = None  # why warming up failed, shown by /readyz
        self._ready = threading.Event()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def status(self) -> str:
        return "ready" if self.ready else f"not ready: {self.failure}" if self.failure else "starting"

    def warm_up(self) -> None:
        """Load the model and bring the index up to date; ready afterwards, or failed with the reason."""
        try:
            report = self.update_index(progress=sys.stderr.isatty())  # a first build shows its progress bar
            _ = self.assistant.store
        except UserError as exc:
            self.failure = str(exc)
            log.error("the index is not available: %s", exc)
            return
        log.info("%s", report.summary())
        self._ready.set()

    def update_index(self, progress: bool = False) -> IndexReport:
        """Index what changed in the corpus; answers meanwhile use the index as it was (see Assistant.snapshot)."""
        return self.assistant.index(progress=progress)

    def require_ready(self) -> None:
        if not self.ready:
            raise ApiError(503, f"the server is {self.status()}; try again shortly", "not_ready",
                           headers={"Retry-After": RETRY_AFTER})
