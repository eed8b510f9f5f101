from pathlib import Path

import pytest

from rag.config import ConfigError, load_settings


def test_defaults_need_no_file_and_no_key():
    settings = load_settings()
    assert settings.corpus == Path("corpus") and settings.index == Path("index")
    assert settings.model == "intfloat/multilingual-e5-small"
    assert not settings.llm_configured


def test_file_then_environment_then_arguments(tmp_path, monkeypatch):
    (tmp_path / "rag.toml").write_text('corpus = "from-file"\ntop_k = 7\nllm_model = "llama3.2"\n')
    assert load_settings().corpus == Path("from-file")
    monkeypatch.setenv("RAG_CORPUS", "from-env")
    settings = load_settings()
    assert (settings.corpus, settings.top_k, settings.llm_model) == (Path("from-env"), 7, "llama3.2")
    assert load_settings(corpus=Path("from-flag")).corpus == Path("from-flag")
    assert load_settings(corpus=None).corpus == Path("from-env")  # unset flags do not mask


def test_openai_variables_configure_the_endpoint(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")
    monkeypatch.setenv("RAG_LLM_MODEL", "qwen2.5")
    settings = load_settings()
    assert settings.llm_configured
    assert (settings.llm_base_url, settings.llm_model) == ("http://127.0.0.1:11434/v1", "qwen2.5")


def test_a_rag_table_is_accepted(tmp_path):
    (tmp_path / "rag.toml").write_text('[rag]\nchunk_tokens = 300\n')
    assert load_settings().chunk_tokens == 300


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("corpus = [unclosed", "not valid TOML"),
        ("chunk_tokens = 5", "chunk_tokens"),
        ("no_such_setting = 1", "no_such_setting"),
    ],
)
def test_malformed_config_gets_a_clear_error(tmp_path, content, message):
    (tmp_path / "rag.toml").write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_settings()


def test_a_named_config_file_must_exist(monkeypatch, tmp_path):
    monkeypatch.setenv("RAG_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="no such file"):
        load_settings()


def test_the_index_is_a_folder_or_a_database_url(monkeypatch):
    assert load_settings(index="some/folder").index == Path("some/folder")
    url = "postgresql://rag:secret@db.example.org:5432/news"
    assert load_settings(index=url).index == url  # kept whole: a Path would fold "//" into "/"
    monkeypatch.setenv("RAG_INDEX", " postgres://localhost/news ")
    assert load_settings().index == "postgres://localhost/news"
