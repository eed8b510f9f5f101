"""A Unigram tokenizer built for the words at hand instead of for its whole vocabulary.

Why: building the ``tokenizers`` Unigram model of the question encoder's
250,002 XLM-R pieces cost 0.6-1.2 s of CPU in every process that embeds a
question, holding the GIL (bench/README.md §12), while one question uses a
few dozen pieces.  Unigram segments each pre-tokenised word by a Viterbi
search over the pieces that are substrings of that word, an unknown character
scoring the vocabulary's lowest score minus a penalty, so a Unigram model over
those pieces (plus the lowest-scored one and the special tokens) segments the
text exactly as the full one does; its ids are mapped back to the full
vocabulary's.  The same ``tokenizers`` library runs the normaliser,
pre-tokeniser, Viterbi search, post-processing, truncation and padding, from
the model's own ``tokenizer.json``; only the vocabulary is cut.  The pieces
are kept in a JSON file of their own (:func:`pieces_document`): read, with
their lookup table built, in 0.15 s of CPU instead of 0.74-0.88 s.

tests/test_unigram_tokenizer.py compares the ids with the whole tokenizer's
over the seed corpus, the eval questions and awkward inputs; ``python -m bench
parity`` over the external benchmark and 1,000 news articles too.
"""

from __future__ import annotations

import base64
import copy
import json
import re

import numpy as np
from tokenizers import Tokenizer


def pieces_document(tokenizer_json: str) -> dict | None:
    """``tokenizer.json`` split into its pipeline (vocabulary emptied), pieces and scores; None if unsupported.

    Supported: a Unigram model without byte fallback (byte pieces are no
    substrings of the text), special tokens matched on the raw text, and a
    template post-processor (or none), whose ids can be renumbered.
    """
    pipeline = json.loads(tokenizer_json)
    model = pipeline.get("model") or {}
    post = pipeline.get("post_processor")
    if model.get("type") != "Unigram" or not model.get("vocab") or model.get("byte_fallback") or \
            any(token.get("normalized") for token in pipeline.get("added_tokens", [])) or \
            (post is not None and post.get("type") != "TemplateProcessing"):
        return None
    pieces, scores = zip(*model["vocab"])
    model["vocab"] = []
    # the scores as raw float64 (exactly the values parsed from tokenizer.json): read back far faster than JSON numbers
    return {"pipeline": pipeline, "pieces": list(pieces),
            "scores": base64.b64encode(np.asarray(scores, dtype="<f8").tobytes()).decode("ascii")}


class UnigramForWords:
    """Tokenises batches like ``Tokenizer.from_str(tokenizer_json)``, truncated and padded as configured."""

    def __init__(self, document: dict, *, max_length: int, truncation_side: str, padding_side: str,
                 pad_id: int, pad_token: str):
        self._pipeline = document["pipeline"]
        self._pieces: list[str] = document["pieces"]
        self._scores = np.frombuffer(base64.b64decode(document["scores"]), dtype="<f8")
        self._ids = dict(zip(self._pieces, range(len(self._pieces))))
        self._longest = max(map(len, self._pieces))
        self._truncation = (max_length, truncation_side)
        self._padding = (padding_side, pad_id, pad_token)
        added = self._pipeline.get("added_tokens", [])
        # always kept: what the pipeline names by id, and the lowest score (the unknown character's penalty)
        self._always = {self._pipeline["model"]["unk_id"], pad_id, int(np.argmin(self._scores)),
                        *(token["id"] for token in added), *self._post_processor_ids()}
        self._always.discard(None)
        skeleton = self._tokenizer(sorted(self._always))
        self._normalizer, self._pre_tokenizer = skeleton.normalizer, skeleton.pre_tokenizer
        self._specials = re.compile("|".join(re.escape(token["content"]) for token in added)) if added else None

    def encode_batch(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids (of the full vocabulary) and attention mask of each text, padded to the longest."""
        needed = set(self._always)
        for text in texts:
            needed |= self._pieces_in(text)
        kept = sorted(needed)
        encodings = self._tokenizer(kept).encode_batch(texts)
        full_ids = np.asarray(kept, dtype=np.int64)
        return (full_ids[np.array([e.ids for e in encodings], dtype=np.int64)],
                np.array([e.attention_mask for e in encodings], dtype=np.int64))

    def _pieces_in(self, text: str) -> set[int]:
        """Ids of every piece that is a substring of a pre-tokenised word of ``text``.

        Words come from the whole text and from its parts between special
        tokens (the pipeline cuts those out before normalising): a superset of
        the words the pipeline segments, which is all exactness needs.
        """
        parts = [text, *self._specials.split(text)] if self._specials else [text]
        found: set[int] = set()
        for part in parts:
            normalized = self._normalizer.normalize_str(part) if self._normalizer else part
            words = self._pre_tokenizer.pre_tokenize_str(normalized) if self._pre_tokenizer else [(normalized, None)]
            for word, _ in words:
                for start in range(len(word)):
                    for end in range(start + 1, min(len(word), start + self._longest) + 1):
                        piece = self._ids.get(word[start:end])
                        if piece is not None:
                            found.add(piece)
        return found

    def _tokenizer(self, kept: list[int]) -> Tokenizer:
        """The pipeline over the pieces ``kept`` (full-vocabulary ids, ascending), its ids renumbered to match."""
        position = {piece: i for i, piece in enumerate(kept)}
        pipeline = copy.copy(self._pipeline)
        pipeline["model"] = dict(pipeline["model"], unk_id=position.get(pipeline["model"]["unk_id"]),
                                 vocab=[[self._pieces[i], float(self._scores[i])] for i in kept])
        pipeline["added_tokens"] = [dict(token, id=position[token["id"]]) for token in pipeline.get("added_tokens", [])]
        if pipeline.get("post_processor"):
            post = copy.deepcopy(pipeline["post_processor"])
            for special in post["special_tokens"].values():
                special["ids"] = [position[i] for i in special["ids"]]
            pipeline["post_processor"] = post
        tokenizer = Tokenizer.from_str(json.dumps(pipeline, ensure_ascii=False))
        max_length, truncation_side = self._truncation
        padding_side, pad_id, pad_token = self._padding
        tokenizer.enable_truncation(max_length, strategy="longest_first", direction=truncation_side)
        tokenizer.enable_padding(direction=padding_side, pad_id=position[pad_id], pad_token=pad_token)
        return tokenizer

    def _post_processor_ids(self) -> list[int]:
        post = self._pipeline.get("post_processor")
        return [i for special in post["special_tokens"].values() for i in special["ids"]] if post else []
