"""Who is calling: the bearer key of a request, and whether its role allows what it asks.

Every ``/v1`` route depends on :func:`reader` or :func:`writer`.  With no
keys configured (loopback, or ``--no-auth``) everyone may do everything and
the caller is ``None``.  A missing or unknown key is 401 (with the
``WWW-Authenticate: Bearer`` challenge), a read key asking to write is 403.
"""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..auth import ApiKey
from .errors import ApiError

bearer = HTTPBearer(auto_error=False, description="An API key from RAG_API_KEYS or the keys file")
CHALLENGE = {"WWW-Authenticate": "Bearer"}


def reader(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> ApiKey | None:
    """The key of the request, which may read; ``None`` when sign-in is off."""
    keyring = request.app.state.service.keyring
    if not keyring:
        return None
    if credentials is None:
        raise ApiError(401, "missing API key: send the header 'Authorization: Bearer <key>'", "missing_api_key",
                       headers=CHALLENGE)
    key = keyring.by_secret(credentials.credentials)
    if key is None:
        raise ApiError(401, "invalid API key", "invalid_api_key", headers=CHALLENGE)
    return key


def writer(key: ApiKey | None = Depends(reader)) -> ApiKey | None:
    """The key of the request, which must have the write role (adding or deleting articles)."""
    if key is not None and not key.can_write:
        raise ApiError(403, f"key {key.name!r} may only read; adding and deleting articles needs a write key",
                       "write_key_required")
    return key
