"""Fault injection: the faults real deployments meet, injected on loopback, and one line of figures per class.

``python -m bench faults`` runs the full form by hand (50 kill rounds, a few concurrent-writer rounds);
``python -m bench faults --short`` is the CI form (fewer rounds, the same shapes) and exits 1 when a fault
class does not hold.  ``--only crashes,writers`` runs some classes.  Figures are in RELIABILITY.md.

Why processes are forked from this one: the embedding model takes 5-20 s to load, and a ``kill -9`` round
needs a fresh process each time.  Forking after the model is loaded gives each writer, upload and reader
a real process of its own (killed for real with SIGKILL) for the cost of a fork, so fifty rounds fit in a
few minutes of a small machine.  The ``rag`` command itself is driven in a child through its typer app
(the same code as the console script), with the loaded model handed to its assistant.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import traceback
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import faiss

from rag.assistant import Assistant
from rag.config import Settings, load_settings
from rag.corpus import ArticleError, Source, iter_sources
from rag.errors import UserError
from rag.indexing import update_index
from rag.store import CURRENT, MANIFEST, VECTORS, IndexStore, live_generation

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "corpus"
FORK = multiprocessing.get_context("fork")
CHILD_TIMEOUT = 120.0  # s: a child that takes longer is a hang, killed and counted as a failure
MAX_BYTES = 300_000  # max_article_bytes of the bench corpora: the "huge file" shape stays cheap
MAX_CHUNKS = 20  # max_article_chunks of the bench corpora: the "one enormous line" shape stays cheap


@dataclass
class Row:
    """What one fault class injected and what held."""

    fault: str
    trials: int = 0
    held: int = 0
    figures: str = ""
    failures: list[str] = field(default_factory=list)
    skipped: str = ""  # why the class was not run here (then it neither holds nor fails)

    def check(self, ok: bool, what: str) -> bool:
        self.trials += 1
        self.held += bool(ok)
        if not ok:
            self.failures.append(what)
        return ok

    @property
    def ok(self) -> bool:
        return not self.failures

    def line(self) -> str:
        if self.skipped:
            return f"{self.fault:<9} not run: {self.skipped}"
        verdict = "held" if self.ok else "FAILED"
        text = f"{self.fault:<9} {verdict} {self.held}/{self.trials}; {self.figures}"
        return text + "".join(f"\n          - {failure}" for failure in self.failures[:8])


# ------------------------------------------------------------------ processes


class ChildFailed(Exception):
    pass


def _child_main(connection, fn, args) -> None:
    try:
        connection.send(("ok", fn(*args)))
    except BaseException as exc:  # reported to the parent, which decides whether it was expected
        connection.send(("error", f"{type(exc).__name__}: {exc}", isinstance(exc, UserError),
                         traceback.format_exc()))
    finally:
        connection.close()
        os._exit(0)


def start_child(fn: Callable, *args):
    """``fn(*args)`` in a forked process: (process, connection its result arrives on)."""
    parent, child = FORK.Pipe(duplex=False)
    process = FORK.Process(target=_child_main, args=(child, fn, args), daemon=True)
    process.start()
    child.close()
    return process, parent


def finish_child(process, connection, timeout: float = CHILD_TIMEOUT):
    """The child's return value; :class:`ChildFailed` for an exception, a hang or a death."""
    try:
        if not connection.poll(timeout):
            raise ChildFailed(f"no answer within {timeout:.0f} s (hung)")
        outcome = connection.recv()
    except EOFError:
        raise ChildFailed(f"died (exit code {process.exitcode})") from None
    finally:
        if process.is_alive():
            process.join(5)
        if process.is_alive():
            process.kill()
        process.join()
        connection.close()
    if outcome[0] == "error":
        raise ChildFailed(outcome[1] if outcome[2] else f"{outcome[1]}\n{outcome[3]}")
    return outcome[1]


def in_child(fn: Callable, *args, timeout: float = CHILD_TIMEOUT):
    return finish_child(*start_child(fn, *args), timeout=timeout)


def killed_at(delay: float, fn: Callable, *args) -> bool:
    """Run ``fn(*args)`` in a child and ``kill -9`` it after ``delay`` s; whether it was still running."""
    process, connection = start_child(fn, *args)
    process.join(delay)
    running = process.is_alive()
    if running:
        process.kill()
    process.join()
    connection.close()
    return running


# ------------------------------------------------------------------ the lab: corpora, indexes, their state


class Lab:
    """A work folder, the one embedding model, and settings for the small corpora the classes break."""

    def __init__(self, work: Path):
        self.work = work
        # questions on torch: each child would otherwise load its own ONNX session (~0.5 GB, seconds), and a
        # session made here would not survive the fork (its threads stay behind)
        base = load_settings(corpus=SEED, index=work / "unused", query_backend="torch")
        self.model_cache = base.model_cache
        self.assistant = Assistant(base)
        self.embedder = self.assistant.embedder
        self.embedder.model  # load it once, before any fork; nothing runs it here (see below)
        # Thread pools do not survive a fork: a child of a parent whose OpenMP pool had run (a torch forward
        # pass, a multi-threaded FAISS search) hung.  So this process never embeds, and searches on one thread.
        faiss.omp_set_num_threads(1)

    def corpus(self, name: str, small: bool = True) -> Path:
        """A fresh corpus of five articles: short variants of the seed articles (a few chunks in all, so a
        full build takes seconds), or a copy of the seed corpus itself."""
        folder = self.work / name / "corpus"
        shutil.rmtree(folder.parent, ignore_errors=True)
        if small:
            folder.mkdir(parents=True)
            for n, seed in enumerate(sorted(SEED.glob("*.txt"))):
                (folder / seed.name).write_text(variant(n, lines=1), encoding="utf-8")
        else:
            shutil.copytree(SEED, folder)
        return folder

    def settings(self, corpus: Path, index: Path | None = None, **extra) -> Settings:
        index = index or corpus.parent / "index"
        return load_settings(corpus=corpus, index=index, model_cache=self.model_cache, max_article_bytes=MAX_BYTES,
                             max_article_chunks=MAX_CHUNKS, **extra)

    def assistant_for(self, settings: Settings, **extra) -> Assistant:
        return Assistant(settings, embedder=self.embedder, **extra)

    def index(self, settings: Settings, rebuild: bool = False):
        """Bring the index up to date (call in a child)."""
        return update_index(settings, self.embedder, rebuild=rebuild, progress=False)

    def rag(self, *args: str) -> tuple[int, str]:
        """The ``rag`` command with these arguments (call in a child): its exit code and all it printed."""
        from typer.testing import CliRunner

        from rag import cli

        cli.make_assistant = lambda corpus, index: self.assistant_for(
            load_settings(corpus=corpus, index=index, model_cache=self.model_cache, max_article_bytes=MAX_BYTES,
                          max_article_chunks=MAX_CHUNKS))
        result = CliRunner().invoke(cli.app, list(args))
        output = result.output  # stdout and stderr, as a terminal shows them
        if result.exception and not isinstance(result.exception, SystemExit):
            output += "".join(traceback.format_exception(result.exception))
        return result.exit_code, output


@dataclass(frozen=True)
class IndexState:
    """What an index holds, read without the model: enough to compare two indexes and to check it answers."""

    generation: str
    articles: frozenset[tuple[str, str]]  # (doc_id, fingerprint)
    chunks: frozenset[tuple[str, int, str]]  # (doc_id, position, text)
    duplicates: int  # visible chunk rows beyond one per (doc_id, position)
    answers: bool  # every probed chunk's own vector finds it first, with its text


def read_state(folder: Path, probes: int = 8) -> IndexState:
    """The live index's state; raises what opening it raises."""
    store = IndexStore.open(folder)
    try:
        passages = store.all_passages()
        chunks = {(p.doc_id, p.position, p.text) for p in passages}
        articles = frozenset((a.doc_id, a.fingerprint) for a in store.all_articles())
        sample = random.Random(0).sample(passages, min(probes, len(passages)))
        vectors = store.vectors_for(p.row_id for p in sample)
        answers = True
        for passage, vector in zip(sample, vectors):
            found = store.search(vector, 1)
            best = store.passages([found[0][0]]).get(found[0][0]) if found else None
            answers &= bool(found) and found[0][1] > 0.99 and best is not None and best.text == passage.text
        return IndexState(store.generation.name, articles, frozenset(chunks), len(passages) - len(chunks), answers)
    finally:
        store.close()


def corpus_articles(settings: Settings) -> frozenset[tuple[str, str]]:
    """(doc_id, fingerprint) of every readable source in the corpus: what an index of it must hold."""
    return frozenset((s.doc_id, s.fingerprint) for s in iter_sources(settings.corpus, settings.max_article_bytes)
                     if isinstance(s, Source))


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def variant(n: int, lines: int = 4) -> str:
    """A small article of its own (a seed article's sentences, tagged), so each round embeds a few chunks."""
    seed = sorted(SEED.glob("*.txt"))[n % 5].read_text(encoding="utf-8").splitlines()
    body = [line for line in seed if len(line) > 60][:lines]
    return f"Variant {n}\n\n" + "\n\n".join(body) + f"\n\nThis is variant number {n} of the article.\n"


# ------------------------------------------------------------------ crashes


def crashes(lab: Lab, rounds: int) -> Row:
    """``kill -9`` at a random moment of a full build, an incremental build or an upload, then check and recover."""
    row, rng = Row("crashes"), random.Random(15)
    corpus = lab.corpus("crashes")
    settings = lab.settings(corpus)
    started = time.perf_counter()
    in_child(lab.index, settings)
    spans = {"full": _timed(lambda: in_child(lab.index, settings, True)), "incremental": 0.0}
    (corpus / "variant-0.txt").write_text(variant(0), encoding="utf-8")
    spans["incremental"] = spans["upload"] = _timed(lambda: in_child(lab.index, settings))
    clean = folder_bytes(settings.index)
    sizes, killed, leftovers = [], 0, 0
    for number in range(1, rounds + 1):
        kind = ("full", "incremental", "upload")[number % 3]
        before = read_state(settings.index)
        action = _crash_action(lab, settings, kind, number)
        killed += killed_at(rng.uniform(0.0, 1.2 * spans[kind]), *action)
        _check_after_kill(row, settings, before, f"round {number} ({kind})")
        try:
            in_child(lab.index, settings)
            state = read_state(settings.index)
            row.check(state.articles == corpus_articles(settings) and state.answers and not state.duplicates,
                      f"round {number} ({kind}): the next `rag index` did not bring the index in line with the corpus")
        except (ChildFailed, UserError) as exc:
            row.check(False, f"round {number} ({kind}): the next `rag index` failed: {exc}")
        sizes.append(folder_bytes(settings.index))
        leftovers = sum(1 for p in corpus.iterdir() if p.name.startswith("."))
    final = lab.settings(corpus, corpus.parent / "clean-index")  # the corpus grew by the uploads: compare like
    in_child(lab.index, final, True)                               # with like, a clean build of it as it is now
    clean_final = folder_bytes(final.index)
    row.check(sizes[-1] <= 3 * clean_final + 200_000, f"index folder grew to {sizes[-1] / 1e3:.0f} KB "
                                                     f"(a clean build of the same corpus: {clean_final / 1e3:.0f} KB)")
    row.check(leftovers == 0, f"{leftovers} temporary file(s) of killed uploads left in the corpus folder")
    row.figures = (f"{rounds} rounds, {killed} killed mid-run (full {spans['full']:.1f} s, incremental "
                   f"{spans['incremental']:.1f} s); index folder {min(sizes) / 1e3:.0f}-{max(sizes) / 1e3:.0f} KB "
                   f"(clean {clean / 1e3:.0f} KB; median of the first and last ten rounds {_median_kb(sizes[:10])} and "
                   f"{_median_kb(sizes[-10:])} KB; at the end {sizes[-1] / 1e3:.0f} KB, a clean build of the corpus "
                   f"as it has grown {clean_final / 1e3:.0f} KB); {leftovers} upload temp files left; "
                   f"{time.perf_counter() - started:.0f} s")
    return row


def _median_kb(sizes: list[int]) -> str:
    return f"{statistics.median(sizes) / 1e3:.0f}"


def _timed(fn: Callable) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _crash_action(lab: Lab, settings: Settings, kind: str, number: int) -> tuple:
    """What the round kills: a rebuild, an update after a corpus change, or an upload and its update."""
    corpus = Path(settings.corpus)
    if kind == "full":
        return lab.index, settings, True
    if kind == "incremental":
        change = number % 4
        target = corpus / f"variant-{number % 7}.txt"
        if change == 0 and target.exists():
            target.unlink()
        else:
            target.write_text(variant(number), encoding="utf-8")
        return lab.index, settings
    return _upload_and_index, lab, settings, f"upload-{number}.txt", variant(number + 100).encode()


def _upload_and_index(lab: Lab, settings: Settings, name: str, raw: bytes):
    assistant = lab.assistant_for(settings)
    assistant.add_file(name, raw)
    return assistant.index(progress=False)


def _check_after_kill(row: Row, settings: Settings, before: IndexState, what: str) -> None:
    """The killed run left the previous index, or its finished successor: whole, answering, no duplicate."""
    try:
        after = read_state(settings.index)
    except UserError as exc:
        row.check(False, f"{what}: the index no longer opens after the kill: {exc}")
        return
    whole = after.articles in (before.articles, corpus_articles(settings))
    row.check(whole and after.answers and not after.duplicates,
              f"{what}: after the kill the index holds {len(after.articles)} articles "
              f"(answers: {after.answers}, duplicates: {after.duplicates})")


# ------------------------------------------------------------------ concurrent writers


def index_writer(lab: Lab, settings: Settings, number: int, slot: int):
    """``rag index``: bring the index up to date."""
    return lab.index(settings)


def upload_writer(lab: Lab, settings: Settings, number: int, slot: int):
    """The UI's upload: Assistant.add_file, then the index update the chat runs after it.

    Every upload writer of a round uses the same file name, with its own text: none may replace another.
    """
    return _upload_and_index(lab, settings, f"upload-{number}.txt", variant(1000 * number + slot).encode())


# The writers started together in each round.  An "API add" writer (``rag serve``'s POST /v1/articles) is one
# more function of this signature, appended here: it starts the server in the child (or posts to one the
# class started) and returns when the article is indexed.
WRITERS: list[Callable[[Lab, Settings, int, int], object]] = [index_writer, index_writer, upload_writer, upload_writer]


def writers(lab: Lab, rounds: int) -> Row:
    """The writers of :data:`WRITERS` at once, after a corpus change; then the index against a clean rebuild."""
    row = Row("writers")
    corpus = lab.corpus("writers")
    settings = lab.settings(corpus)
    clean_settings = lab.settings(corpus, corpus.parent / "clean-index")
    started = time.perf_counter()
    in_child(lab.index, settings)
    for number in range(1, rounds + 1):
        for extra in range(2):
            (corpus / f"added-{number}-{extra}.txt").write_text(variant(10 * number + extra), encoding="utf-8")
        (corpus / "001_a446dc25cb93e1a2.txt").write_text(variant(number) + "Changed.\n", encoding="utf-8")
        children = [start_child(writer, lab, settings, number, slot) for slot, writer in enumerate(WRITERS)]
        for slot, child in enumerate(children):
            try:
                finish_child(*child)
            except ChildFailed as exc:
                row.check(False, f"round {number}: writer {slot} ({WRITERS[slot].__name__}) failed: {exc}")
        uploads = sum(1 for p in corpus.glob(f"upload-{number}*.txt"))
        expected_uploads = sum(w is upload_writer for w in WRITERS)
        row.check(uploads == expected_uploads, f"round {number}: {expected_uploads} uploads of one name left "
                                               f"{uploads} file(s): an upload replaced another")
        state = read_state(settings.index)
        in_child(lab.index, clean_settings, True)
        clean = read_state(clean_settings.index)
        row.check(not state.duplicates, f"round {number}: {state.duplicates} duplicated chunk(s)")
        row.check(state.articles == clean.articles,
                  f"round {number}: articles differ from a clean rebuild "
                  f"({len(state.articles - clean.articles)} extra, {len(clean.articles - state.articles)} missing)")
        row.check(state.chunks == clean.chunks, f"round {number}: chunks differ from a clean rebuild")
    row.figures = (f"{rounds} rounds of {len(WRITERS)} writers at once "
                   f"({', '.join(w.__name__ for w in WRITERS)}); {time.perf_counter() - started:.0f} s")
    return row


# ------------------------------------------------------------------ corrupt or missing index parts


def _garble(path: Path, at: float = 0.5, size: int = 4096) -> None:
    data = bytearray(path.read_bytes())
    start = int(len(data) * at)
    data[start:start + size] = random.Random(str(path)).randbytes(min(size, len(data) - start))
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _unreadable(path: Path) -> None:
    """chmod 000; root reads through that, so there the file is replaced by a folder (reads fail: EISDIR)."""
    if os.geteuid() == 0:
        path.unlink()
        path.mkdir()
    else:
        path.chmod(0)


def _generation(index: Path) -> Path:
    return live_generation(index)


def _sqlite(index: Path) -> Path:
    return index / json.loads((_generation(index) / MANIFEST).read_text())["metadata"]


CORRUPTIONS: dict[str, Callable[[Path], None]] = {
    "SQLite truncated": lambda index: _truncate(_sqlite(index)),
    "SQLite header garbled": lambda index: _garble(_sqlite(index), 0.0, 100),
    "SQLite pages garbled": lambda index: _garble(_sqlite(index), 0.5),
    "SQLite emptied": lambda index: _sqlite(index).write_bytes(b""),
    "SQLite missing": lambda index: _sqlite(index).unlink(),
    "vectors.faiss missing": lambda index: (_generation(index) / VECTORS).unlink(),
    "vectors.faiss truncated": lambda index: _truncate(_generation(index) / VECTORS),
    "vectors.faiss garbled": lambda index: _garble(_generation(index) / VECTORS),
    "vectors.faiss emptied": lambda index: (_generation(index) / VECTORS).write_bytes(b""),
    "manifest.json garbled": lambda index: _garble(_generation(index) / MANIFEST, 0.2, 40),
    "manifest.json missing": lambda index: (_generation(index) / MANIFEST).unlink(),
    "CURRENT random bytes": lambda index: (index / CURRENT).write_bytes(random.Random(1).randbytes(64)),
    "CURRENT empty": lambda index: (index / CURRENT).write_bytes(b""),
    "CURRENT names no generation": lambda index: (index / CURRENT).write_text("gen-999999-1-1"),
    "CURRENT names a path": lambda index: (index / CURRENT).write_text("../../etc"),
    "generation missing": lambda index: shutil.rmtree(_generation(index)),
    "lexical index missing": lambda index: shutil.rmtree(_generation(index) / "lexical"),
    "vectors.faiss unreadable": lambda index: _unreadable(_generation(index) / VECTORS),
    "SQLite unreadable": lambda index: _unreadable(_sqlite(index)),
    "CURRENT unreadable": lambda index: _unreadable(index / CURRENT),
}


SHORT_CORRUPTIONS = ("SQLite pages garbled", "SQLite missing", "vectors.faiss garbled", "vectors.faiss truncated",
                     "CURRENT random bytes", "generation missing", "CURRENT unreadable")  # one or two per part


def corrupt(lab: Lab, rounds: int) -> Row:
    """Each shape of :data:`CORRUPTIONS` on a copy of a good index: a reader gets one line saying what to run
    (or the right answers), and ``rag index`` repairs it."""
    row = Row("corrupt")
    corpus = lab.corpus("corrupt")
    pristine = lab.settings(corpus, corpus.parent / "pristine")
    started = time.perf_counter()
    in_child(lab.index, pristine)
    good = read_state(pristine.index)
    rebuilds = 0
    shapes = {name: CORRUPTIONS[name] for name in SHORT_CORRUPTIONS} if rounds == 0 else CORRUPTIONS
    for name, damage in shapes.items():
        settings = lab.settings(corpus, corpus.parent / "broken")
        shutil.rmtree(settings.index, ignore_errors=True)
        shutil.copytree(pristine.index, settings.index)
        damage(settings.index)
        told = _reader_outcome(settings.index, good)
        row.check(told.startswith(("one line", "same answers")), f"{name}: {told}")
        command = ["index", "--rebuild"] if "`rag index --rebuild`" in told else ["index"]
        rebuilds += len(command) == 2
        code, output = in_child(lab.rag, *command, "--corpus", str(corpus), "--index", str(settings.index))
        try:
            repaired = read_state(settings.index)
            fixed = repaired.articles == good.articles and repaired.chunks == good.chunks and repaired.answers
        except Exception as exc:  # noqa: BLE001 - the failure being measured
            fixed, output = False, f"{output} / then: {exc}"
        row.check(code == 0 and fixed and "Traceback" not in output,
                  f"{name}: `rag index` did not repair it (exit {code}): {_first_lines(output)}")
    root = " (running as root: 'unreadable' is a folder in the file's place, chmod 000 does not stop root)" \
        if os.geteuid() == 0 else ""
    row.figures = (f"{len(shapes)} shapes, each read, then repaired by the command its message names "
                   f"(`rag index --rebuild` for {rebuilds}, `rag index` for the others){root}; "
                   f"{time.perf_counter() - started:.0f} s")
    return row


def _reader_outcome(index: Path, good: IndexState) -> str:
    """What a reader of the damaged index gets: "same answers", "one line: ..." or what went wrong."""
    try:
        state = read_state(index)
    except UserError as exc:
        text = str(exc)
        if "\n" in text or "rag index" not in text:
            return f"an error that does not say what to run: {text!r}"
        return f"one line: {text}"
    except Exception as exc:  # noqa: BLE001 - the failure being measured
        return f"a {type(exc).__name__} instead of one line: {exc}"
    if state.articles == good.articles and state.chunks == good.chunks and state.answers:
        return "same answers"
    return "served silently with different contents or answers"


def _first_lines(text: str, lines: int = 3) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


# ------------------------------------------------------------------ bad articles


def _cp1258(text: str) -> bytes:
    """Vietnamese in its Windows code page: a letter it has, else the letter and a combining tone mark."""
    def one(ch: str) -> bytes:
        try:
            return ch.encode("cp1258")
        except UnicodeEncodeError:
            decomposed = unicodedata.normalize("NFD", ch)
            tone = next(mark for mark in decomposed if mark in "\u0300\u0301\u0303\u0309\u0323")
            base = unicodedata.normalize("NFC", decomposed.replace(tone, ""))
            return base.encode("cp1258") + tone.encode("cp1258")
    return b"".join(one(ch) for ch in text)


def _utf16_nobom(text: str) -> bytes:
    return text.encode("utf-16-le")


VI = "Tỉnh Thanh Hóa ký kết hợp tác với tỉnh Yamanashi của Nhật Bản về nông nghiệp công nghệ cao và năng lượng."
ID = "Pemerintah kota Surabaya membuka kafe baru di pusat kota, dan café itu ramai dikunjungi warga setiap hari."
RECORD = {"id": "bulk-ok-1", "title": "Bulk record", "text": f"{ID} {ID}", "lang": "id", "url": "https://example.com/b"}

# name -> (bytes, or a callable making the path itself; whether its article must be indexed)
BAD_ARTICLES: dict[str, tuple[object, bool]] = {
    "empty.txt": (b"", False),
    "whitespace.txt": (b" \n\n\t \n", False),
    "binary.txt": (random.Random(2).randbytes(4000), False),
    "image.txt": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + random.Random(3).randbytes(2000), False),
    "archive.md": (b"PK\x03\x04" + random.Random(4).randbytes(2000), False),
    "nul-in-text.txt": (f"{VI}\x00{VI}".encode(), False),
    "utf16-bom.txt": (f"Tin UTF-16\n\n{VI}".encode("utf-16"), True),
    "utf16le-nobom.txt": (_utf16_nobom(f"Tin UTF-16 LE\n\n{VI}"), True),
    "utf16be-bom.txt": (b"\xfe\xff" + f"Tin UTF-16 BE\n\n{VI}".encode("utf-16-be"), True),
    "utf32.txt": (f"Tin UTF-32\n\n{VI}".encode("utf-32"), True),
    "utf8-bom.txt": (f"Tin UTF-8 BOM\n\n{VI}".encode("utf-8-sig"), True),
    "cp1258.txt": (_cp1258(f"Tin CP1258\n\nHà Nội và Thành phố Hồ Chí Minh hợp tác với nhau trong nhiều lĩnh vực."),
                   True),
    "latin1.txt": (f"Berita Latin-1\n\n{ID}".encode("latin-1"), True),
    "crlf.txt": (f"Berita CRLF\r\n\r\n{ID}\r\n".encode(), True),
    "control-chars.txt": (f"Berita kontrol\n\n\u200b{ID}\u202e{ID}\x07".encode(), True),
    "huge.txt": ((f"{ID}\n" * 4000).encode(), False),  # over MAX_BYTES
    "one-enormous-line.txt": (("kata " * 50_000).encode(), True),  # 250 KB without punctuation
    "script-only.html": (b"<html><head><script>alert(1)</script></head><body></body></html>", False),
    "page.html": (f"<html><head><title>Halaman</title></head><body><p>{ID}</p></body></html>".encode(), True),
    "notes.md": (f"# Catatan\n\n{ID}\n".encode(), True),
    "broken.jsonl": ("\n".join([json.dumps(RECORD), '{"id": "bulk-broken", "text": ',
                                json.dumps({"id": "bulk-no-text", "title": "x"}),
                                json.dumps({"id": "bulk-text-number", "text": 42}),
                                json.dumps({"id": "", "text": ID}), json.dumps({"text": ID}), "[1, 2, 3]",
                                json.dumps({"id": "000_4c94815e66c1bf8a", "text": f"Hijacked. {ID}"}),
                                json.dumps({**RECORD, "id": "bulk-ok-2"})]).encode(), True),
    "bom.jsonl": (b"\xef\xbb\xbf" + json.dumps({**RECORD, "id": "bulk-bom"}).encode(), True),
    "dup-a.jsonl": (json.dumps({**RECORD, "id": "dup-1"}).encode(), True),
    "dup-b.jsonl": (json.dumps({**RECORD, "id": "dup-1", "text": f"Second. {ID}"}).encode(), False),
    "huge-record.jsonl": (json.dumps({**RECORD, "id": "bulk-huge", "text": ID * 3000}).encode(), False),
    "new\nline.txt": (f"Baris baru\n\n{ID}".encode(), True),
    "Tin tức ở Hà Nội.txt": (f"Tin tức\n\n{VI}".encode(), True),
    "-rf.txt": (f"Dash\n\n{ID}".encode(), True),
    "it's \"quoted\" $(id).txt": (f"Quoted\n\n{ID}".encode(), True),
    ("x" * 240) + ".txt": (f"Long name\n\n{ID}".encode(), True),
    "deep/er/and/deeper/nested.txt": (f"Nested\n\n{ID}".encode(), True),
    "unsupported.docx": (b"PK\x03\x04 not an article", False),
    "passwd.txt": (lambda path: path.symlink_to("/etc/passwd"), False),
    "outside": (lambda path: path.symlink_to(_outside_folder(path)), False),
    "fifo.txt": (lambda path: os.mkfifo(path), False),
    "folder.txt": (lambda path: path.mkdir(), False),
    "unreadable.txt": (lambda path: (path.write_bytes(f"Unreadable\n\n{ID}".encode()), path.chmod(0)), os.geteuid() == 0),
    "000_4c94815e66c1bf8a.txt": (random.Random(5).randbytes(3000), True),  # a seed article turned binary: kept
}
ARTICLE_IDS = {"broken.jsonl": ["bulk-ok-1", "bulk-ok-2"], "bom.jsonl": ["bulk-bom"], "dup-a.jsonl": ["dup-1"],
               "dup-b.jsonl": ["dup-1"], "huge-record.jsonl": ["bulk-huge"]}
MUST_NOT_BE_INDEXED = {"bulk-broken", "bulk-no-text", "bulk-text-number", "bulk-huge", "passwd", "secret"}


def _outside_folder(link: Path) -> Path:
    outside = link.parent.parent / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "secret.txt").write_text(f"Secret\n\n{ID}", encoding="utf-8")
    return outside


def _ids_of(name: str) -> list[str]:
    return ARTICLE_IDS.get(name, [Path(name).stem])


def articles(lab: Lab, rounds: int) -> Row:
    """Every shape of :data:`BAD_ARTICLES` dropped into an indexed corpus: the good ones indexed, each bad one
    named in one line, and nothing already indexed lost."""
    row = Row("articles")
    corpus = lab.corpus("articles")
    settings = lab.settings(corpus)
    in_child(lab.index, settings)
    before = read_state(settings.index)
    for name, (content, _) in BAD_ARTICLES.items():
        path = corpus / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content(path)
        else:
            path.write_bytes(content)
    started = time.perf_counter()
    try:
        report = in_child(lab.index, settings, timeout=300)
    except ChildFailed as exc:
        row.check(False, f"the update failed: {exc}")
        return row
    seconds = time.perf_counter() - started
    state = read_state(settings.index)
    indexed = {doc_id for doc_id, _ in state.articles}
    row.check(before.articles <= state.articles, "an article indexed before was lost or changed: "
              f"{sorted(d for d, _ in before.articles - state.articles)}")
    for name, (_, expected) in BAD_ARTICLES.items():
        ids = _ids_of(name)
        if name == "dup-b.jsonl":
            ok = any("dup-b.jsonl" in error for error in report.errors)
        elif expected:
            ok = all(doc_id in indexed for doc_id in ids)
        else:
            ok = not any(doc_id in indexed and doc_id not in _ids_of("dup-a.jsonl") for doc_id in ids)
        row.check(ok, f"{name!r}: {'not indexed' if expected else 'indexed'}, expected "
                      f"{'indexed' if expected else 'refused'}")
    row.check(not (MUST_NOT_BE_INDEXED & indexed), f"indexed: {sorted(MUST_NOT_BE_INDEXED & indexed)}")
    store = IndexStore.open(settings.index)
    hijack = store.article("000_4c94815e66c1bf8a")
    store.close()
    row.check(hijack is not None and "Hijacked" not in hijack.text, "a JSONL record reusing an article's id replaced the article")
    row.check(all("\n" not in e.replace("new\nline", "") for e in report.errors), "an error message of several lines")
    empty = corpus.parent / "empty-corpus"
    empty.mkdir()
    code, output = in_child(lab.rag, "search", "Thanh Hoa", "--corpus", str(empty), "--index", str(empty) + "-index")
    row.check("Traceback" not in output and len(output.strip().splitlines()) <= 2,
              f"`rag search` over an empty corpus folder (exit {code}): {_first_lines(output)}")
    chunks = sum(1 for doc_id, _, _ in state.chunks if doc_id == "one-enormous-line")
    warned = any("one-enormous-line" in error for error in report.errors)
    row.check(warned or chunks <= 50, f"one enormous line: {chunks} chunks without a warning")
    row.figures = (f"{len(BAD_ARTICLES)} shapes and an empty corpus folder; {len(report.errors)} one-line messages; the update took "
                   f"{seconds:.1f} s; the 250 KB line without punctuation: {chunks} chunks"
                   f"{' (warned)' if warned else ''}")
    if os.geteuid() == 0:
        row.figures += "; as root 'unreadable.txt' is readable, so it is expected indexed"
    return row


# ------------------------------------------------------------------ hostile uploads and pastes


HOSTILE_NAMES = ["../../escape.txt", "/tmp/rag-faults-absolute.txt", "..\\..\\windows.txt", "sub/../../../up.txt",
                 "..", ".hidden.txt", "name\nwith\nnewlines.txt", "nul\x00byte.txt", "x" * 600 + ".txt", "CON.txt",
                 "", "payload.exe", "<script>alert(1)</script>.txt", "-rf .txt", "../../escape.jsonl"]
SCRIPT = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def hostile(lab: Lab, rounds: int) -> Row:
    """Uploads and pastes through the library and the UI's handlers: nothing lands outside the corpus folder,
    every refusal is a UserError, and the UI's handlers never raise."""
    row = Row("hostile")
    started = time.perf_counter()
    corpus = lab.corpus("hostile")
    settings = lab.settings(corpus)
    in_child(lab.index, settings)
    outcome = in_child(_hostile_in_child, lab, settings)
    for what, ok in outcome["checks"]:
        row.check(ok, what)
    sandbox = corpus.parent
    uploads = sandbox / "uploads"  # the UI's own upload folder (gradio's, in a deployment)
    strays = [str(p) for p in sandbox.rglob("*") if not any(p.is_relative_to(f) for f in (corpus, settings.index, uploads))]
    strays += [p for p in ("/tmp/rag-faults-absolute.txt",) if os.path.exists(p)]
    row.check(not strays, f"files outside the corpus folder: {strays}")
    inside = all(p.resolve().is_relative_to(corpus.resolve()) for p in corpus.rglob("*"))
    row.check(inside, "a corpus file resolves outside the corpus folder")
    row.figures = (f"{len(HOSTILE_NAMES)} hostile names, 1 oversized body, script in title/body/URL, javascript: "
                   f"and data: URLs, through Assistant.add_file/add_text and the UI's add_files/add_pasted; "
                   f"{outcome['added']} added, {outcome['refused']} refused; in the browser: tests/test_ui.py; "
                   f"{time.perf_counter() - started:.0f} s")
    return row


def _hostile_in_child(lab: Lab, settings: Settings) -> dict:
    from ui.app import ChatApp

    assistant = lab.assistant_for(settings)
    checks, added, refused = [], 0, 0

    def attempt(what: str, fn: Callable) -> None:
        nonlocal added, refused
        try:
            fn()
            added += 1
        except UserError:
            refused += 1
        except Exception as exc:  # noqa: BLE001 - the failure being measured
            checks.append((f"{what}: {type(exc).__name__}: {exc}", False))

    body = f"Judul\n\n{ID}".encode()
    for name in HOSTILE_NAMES:
        raw = json.dumps({"id": "../../x", "text": ID}).encode() if name.endswith(".jsonl") else body
        attempt(f"add_file({name[:40]!r})", lambda: assistant.add_file(name, raw))
    attempt("oversized body", lambda: assistant.add_file("big.txt", b"kata " * (MAX_BYTES // 5 + 10)))
    attempt("script in title and body", lambda: assistant.add_text(SCRIPT, f"{SCRIPT} {ID}", "https://example.com/x"))
    for url in ("javascript:alert(1)", "data:text/html,<script>alert(1)</script>", "https://example.com/\"><script>"):
        attempt(f"url {url[:30]!r}", lambda: assistant.add_text("Judul", ID, url))
    checks.append(("javascript: URL accepted", not any(
        (a.url or "").lower().startswith(("javascript:", "data:")) for s in iter_sources(settings.corpus, MAX_BYTES)
        if isinstance(s, Source) for a in [_parsed(s)])))
    app = ChatApp(assistant)
    uploads = Path(settings.corpus).parent / "uploads"
    uploads.mkdir()
    (uploads / "upload.txt").write_bytes(body)
    (uploads / "binary.txt").write_bytes(random.Random(6).randbytes(500))
    for what, call in (("UI add_files", lambda: app.add_files([str(uploads / "upload.txt"), str(uploads / "binary.txt")],
                                                              None, progress=_NoProgress())),
                       ("UI add_pasted", lambda: app.add_pasted(SCRIPT, "javascript:alert(1)", ID, None, progress=_NoProgress())),
                       ("UI add_pasted ok", lambda: app.add_pasted("Judul", "https://example.com/", ID, None,
                                                                   progress=_NoProgress()))):
        try:
            call()
            checks.append((what, True))
        except Exception as exc:  # noqa: BLE001 - the failure being measured
            checks.append((f"{what} raised {type(exc).__name__}: {exc}", False))
    report = assistant.index(progress=False)
    checks.append((f"the index update after the uploads: {report.errors}", not report.errors))
    return {"checks": checks, "added": added, "refused": refused}


def _parsed(source: Source):
    from rag.corpus import parse_source

    try:
        return parse_source(source)
    except ArticleError:
        return None


class _NoProgress:
    """Stands in for gradio's progress tracker outside a request."""

    def __call__(self, *args, **kwargs):
        return None

    def tqdm(self, iterable, *args, **kwargs):
        return iterable


# ------------------------------------------------------------------ LLM endpoint faults


def llm(lab: Lab, rounds: int) -> Row:
    """Each endpoint fault of :func:`_llm_faults` answered in one child: a note, the passages, a bounded wait,
    and a healthy answer after them all (the process keeps serving)."""
    row = Row("llm")
    started = time.perf_counter()
    corpus = lab.corpus("llm", small=False)
    settings = lab.settings(corpus)
    in_child(lab.index, settings)
    results = in_child(_llm_in_child, lab, settings, timeout=400)
    for name, ok, what, _ in results:
        row.check(ok, f"{name}: {what}")
    waits = ", ".join(f"{name} {seconds:.1f} s" for name, _, _, seconds in results)
    row.figures = (f"{len(results) - 1} endpoint faults, then a healthy reply; each answered with a note and the "
                   f"passages in: {waits}; {time.perf_counter() - started:.0f} s")
    return row


LLM_TIMEOUT = 3.0  # s: llm_timeout of the faults class


def _llm_faults():
    from tests.llm_server import Reply

    cited = "Thanh Hoa bersetuju bekerja sama dengan Yamanashi [1]. " * 3
    return {
        "401": Reply(status=401), "429": Reply(status=429, headers={"retry-after-ms": "10"}),
        "500": Reply(status=500), "503": Reply(status=503),
        "slow past the timeout": Reply(text=cited, delay=LLM_TIMEOUT + 2),
        "HTML page with 200": Reply(body=b"<html><body>Welcome to nginx</body></html>"),
        "invalid JSON in the stream": Reply(sse=['data: {"choices": [{"delta": {"content": "Tha', "data: [DONE]"]),
        "stream cut mid-answer": Reply(text=cited * 5, cut_after=6),
        "endless stream": Reply(text="kata " * 20_000, chunk_delay=0.005),  # 100 s of answer
        "empty reply": Reply(text=""),
    }


def _llm_in_child(lab: Lab, settings: Settings) -> list[tuple[str, bool, str, float]]:
    from tests.llm_server import ScriptedLLMServer

    question = "What did Thanh Hoa agree with Yamanashi?"
    results = []
    with ScriptedLLMServer() as server:
        down = f"http://127.0.0.1:{_free_port()}/v1"
        cases = [("down", down, None), *((name, server.base_url, reply) for name, reply in _llm_faults().items()),
                 ("healthy after them", server.base_url, "Thanh Hoa bersetuju dengan Yamanashi [1].")]
        for name, url, reply in cases:
            if reply is not None:
                server.script(reply)
            llm_settings = settings.model_copy(update={"llm_base_url": url, "llm_api_key": "k",
                                                       "llm_timeout": LLM_TIMEOUT, "llm_max_retries": 1,
                                                       "llm_answer_timeout": 2 * LLM_TIMEOUT})
            assistant = lab.assistant_for(llm_settings)
            clock = time.perf_counter()
            try:
                answer = assistant.answer(question)
            except Exception as exc:  # noqa: BLE001 - the failure being measured
                results.append((name, False, f"{type(exc).__name__}: {exc}", time.perf_counter() - clock))
                continue
            seconds = time.perf_counter() - clock
            bounded = seconds < 4 * LLM_TIMEOUT + 15
            if name.startswith("healthy"):
                ok, what = answer.mode == "llm" and bounded, f"mode {answer.mode}, {seconds:.1f} s"
            else:
                ok = bool(answer.passages) and bool(answer.notes) and bounded
                what = (f"{len(answer.passages)} passages, note {answer.notes[:1]!r}, mode {answer.mode}, "
                        f"{seconds:.1f} s")
            results.append((name, ok, what, seconds))
    return results


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------ load


def load(lab: Lab, rounds: int) -> Row:
    """20 chat users for 60 s with an index update in the middle: ``python -m bench load`` (the API's load
    benchmark) measures it over HTTP; this row points there rather than duplicating it."""
    return Row("load", skipped="see `python -m bench load` (20 concurrent chat users over the HTTP API)")


CLASSES: dict[str, tuple[Callable[[Lab, int], Row], int, int]] = {  # name -> (class, rounds short, rounds full)
    "crashes": (crashes, 6, 50),
    "writers": (writers, 1, 5),
    "corrupt": (corrupt, 0, 1),  # 0: the shapes of SHORT_CORRUPTIONS
    "articles": (articles, 1, 1),
    "hostile": (hostile, 1, 1),
    "llm": (llm, 1, 1),
    "load": (load, 1, 1),
}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench faults", description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="the CI form: fewer rounds")
    parser.add_argument("--only", default=",".join(CLASSES), help="comma-separated classes")
    parser.add_argument("--work", type=Path, help="work folder (default: a temporary one, removed after)")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(chosen) - set(CLASSES)
    if unknown:
        parser.error(f"unknown classes {sorted(unknown)}; choose from {', '.join(CLASSES)}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = args.work or Path(tempfile.mkdtemp(prefix="rag-faults-"))
    started = time.perf_counter()
    try:
        lab = Lab(work)
        print(f"fault injection ({'short' if args.short else 'full'}), {time.strftime('%Y-%m-%d')}, "
              f"model loaded in {time.perf_counter() - started:.0f} s", flush=True)
        rows = []
        for name in chosen:
            fn, short, full = CLASSES[name]
            try:
                rows.append(fn(lab, short if args.short else full))
            except Exception as exc:  # noqa: BLE001 - a class that breaks is a failed class, and the others run
                rows.append(Row(name, failures=[f"the class itself failed: {exc}\n{traceback.format_exc()}"]))
            print(rows[-1].line(), flush=True)
    finally:
        if args.work is None:
            _remove(work)
    failed = [row.fault for row in rows if not row.ok]
    print(f"{len(rows) - len(failed)}/{len(rows)} classes held in {time.perf_counter() - started:.0f} s"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    sys.exit(1 if failed else 0)


def _remove(folder: Path) -> None:
    for path in folder.rglob("*"):  # an unreadable file or folder left by a shape must not stop the clean-up
        if not path.is_symlink():
            try:
                path.chmod(0o700)
            except OSError:
                pass
    shutil.rmtree(folder, ignore_errors=True)
