"""Load on `rag serve`: concurrent OpenAI-client chats on loopback, then the same while an article is added.

    python -m bench load [--clients 20] [--seconds 60]

The server is a real `rag serve` process (no LLM: extractive answers) over a
fresh copy of the seed corpus in the work folder, with a read and a write key.
First every answerable question of eval/questions.jsonl is asked once, alone:
the ones whose answer cites their gold article are the question set, and that
answer is each question's reference.  Then:

1. ``--clients`` threads, each with its own ``openai`` client and its own
   questions (every ``clients``-th one), ask in a loop for ``--seconds``; odd
   clients stream, even ones do not.
2. The same again, and half-way through a writer adds an article over the API
   (``POST /v1/articles``) and then keeps asking about it.

Each answer is checked: status 200, its citations include the question's gold
article ("right article"), and its text is the reference text ("intact": no
answer mixed up with another client's, none changed by the load).  The
writer's answers must cite the article it added.  Printed: requests, errors,
wrong-article and changed answers, throughput, p50/p95/max latency.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import openai

from rag.api.app import free_port

from .common import ROOT, WORK, machine, table

READ_KEY = "bench-read-0123456789abcdef"
WRITE_KEY = "bench-write-0123456789abcdef"
MODEL = "rag-news"
NEW_ARTICLE = {
    "title": "Festival Lampion Batam", "url": "https://example.com/batam", "date": "2026-03-03", "lang": "id",
    "text": "Pemerintah Kota Batam menggelar festival lampion terbesar pada 3 Maret 2026. Festival itu dihadiri "
            "40.000 pengunjung dari Singapura dan Malaysia. Wali Kota Batam Amsakar Achmad membuka acara festival "
            "lampion tersebut di alun-alun Engku Putri.",
}
NEW_QUESTION = "Berapa pengunjung festival lampion Batam?"


@dataclass(frozen=True)
class Question:
    text: str
    gold: frozenset[str]


@dataclass(frozen=True)
class Reply:
    text: str
    cited: frozenset[str]


@dataclass
class Tally:
    """Every answer of a phase, kept to be checked against the references once the phase is over."""

    answers: list[tuple[Question, Reply, float, bool]] = field(default_factory=list)  # ..., seconds, streamed
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, question: Question, reply: Reply, seconds: float, streamed: bool = False) -> None:
        with self.lock:
            self.answers.append((question, reply, seconds, streamed))

    def failed(self, problem: str) -> None:
        with self.lock:
            self.errors.append(problem)

    def check(self, references: list[dict[str, Reply]]) -> tuple[int, int, list[str]]:
        """Answers citing other articles than a reference answer, answers whose text is none of them, examples."""
        wrong = changed = 0
        examples = []
        for question, reply, _, _ in self.answers:
            allowed = [refs[question.text] for refs in references]
            bad_article = reply.cited not in {ref.cited for ref in allowed}
            bad_text = reply.text not in {ref.text for ref in allowed}
            wrong, changed = wrong + bad_article, changed + bad_text
            if (bad_article or bad_text) and len(examples) < 5:
                examples.append(f"{question.text!r} cited {sorted(reply.cited)}: {reply.text[:100]!r}")
        return wrong, changed, examples


def start_server(folder: Path) -> tuple[subprocess.Popen, str]:
    """`rag serve` over a fresh copy of the seed corpus; returns once /readyz says ready."""
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(ROOT / "corpus", folder / "corpus")
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "OPENAI_"))},
           "RAG_API_KEYS": f"bench-reader:read:{READ_KEY},bench-writer:write:{WRITE_KEY}",
           "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [sys.executable, "-c", "from rag.cli import main; main()", "serve", "--port", str(port),
         "--corpus", str(folder / "corpus"), "--index", str(folder / "index")],
        cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=open(folder / "server.log", "w"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"the server exited; see {folder / 'server.log'}")
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.terminate()
    sys.exit("the server was not ready within 10 minutes")


def client(url: str, key: str = READ_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=300)


def ask(chat: openai.OpenAI, question: str, stream: bool) -> Reply:
    """The answer text and the articles it cites, over a plain or a streamed completion."""
    messages = [{"role": "user", "content": question}]
    if not stream:
        completion = chat.chat.completions.create(model=MODEL, messages=messages)
        rag = completion.model_extra["rag"]
        return Reply(completion.choices[0].message.content, frozenset(c["doc_id"] for c in rag["citations"]))
    text, rag = "", None
    for chunk in chat.chat.completions.create(model=MODEL, messages=messages, stream=True):
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        rag = (chunk.model_extra or {}).get("rag", rag)
    if rag is None:
        raise ValueError("the stream ended without the rag field")
    return Reply(text, frozenset(c["doc_id"] for c in rag["citations"]))


def load_questions() -> list[Question]:
    records = [json.loads(line) for line in (ROOT / "eval" / "questions.jsonl").read_text(encoding="utf-8").splitlines()]
    return [Question(r["question"], frozenset(r["gold_docs"])) for r in records if r.get("answerable")]


def references(url: str, questions: list[Question]) -> dict[str, Reply]:
    """Each question's answer when asked alone: what every answer under load must be."""
    chat = client(url)
    return {question.text: ask(chat, question.text, stream=False) for question in questions}


def run_client(url: str, questions: list[Question], stream: bool, until: float, tally: Tally) -> None:
    chat = client(url)
    turn = 0
    while time.monotonic() < until:
        question = questions[turn % len(questions)]
        turn += 1
        started = time.perf_counter()
        try:
            reply = ask(chat, question.text, stream)
        except (openai.OpenAIError, ValueError) as exc:
            tally.failed(f"{type(exc).__name__}: {exc}")
            continue
        tally.record(question, reply, time.perf_counter() - started, streamed=stream)


def run_writer(url: str, start_at: float, until: float, tally: Tally, report: dict) -> None:
    """Add the article half-way through, then keep asking about it: each answer must cite it."""
    time.sleep(max(0.0, start_at - time.monotonic()))
    started = time.perf_counter()
    response = httpx.post(f"{url}/v1/articles", json=NEW_ARTICLE, timeout=600,
                          headers={"Authorization": f"Bearer {WRITE_KEY}"})
    report["add_seconds"] = time.perf_counter() - started
    if response.status_code != 201:
        report["add_error"] = f"{response.status_code}: {response.text[:200]}"
        return
    article_id = response.json()["added"][0]["id"]
    report["index"] = response.json()["index"]["summary"]
    question = Question(NEW_QUESTION, frozenset({article_id}))
    chat = client(url)
    while time.monotonic() < until:
        started = time.perf_counter()
        try:
            reply = ask(chat, NEW_QUESTION, stream=False)
        except openai.OpenAIError as exc:
            tally.failed(f"{type(exc).__name__}: {exc}")
            continue
        tally.record(question, reply, time.perf_counter() - started)


def phase(url: str, questions: list[Question], clients: int, seconds: float, add_article: bool) -> dict:
    tally, writer_tally, report = Tally(), Tally(), {}
    started = time.monotonic()
    until = started + seconds
    threads = [threading.Thread(target=run_client, args=(url, questions[i::clients] or questions, i % 2 == 1, until,
                                                         tally)) for i in range(clients)]
    if add_article:
        threads.append(threading.Thread(target=run_writer, args=(url, started + seconds / 2, until, writer_tally,
                                                                 report)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"tally": tally, "writer": writer_tally, "wall": time.monotonic() - started, **report}


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def row(name: str, tally: Tally, wall: float, refs: list[dict[str, Reply]]) -> list:
    latencies = [seconds for _, _, seconds, _ in tally.answers]
    wrong, changed, _ = tally.check(refs)
    return [name, len(latencies) + len(tally.errors), len(tally.errors), wrong, changed, len(latencies) / wall,
            statistics.median(latencies) if latencies else float("nan"), percentile(latencies, 0.95),
            max(latencies, default=float("nan"))]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench load")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args(argv)

    folder = WORK / "load"
    process, url = start_server(folder)
    try:
        asked = load_questions()
        before = references(url, asked)
        questions = [q for q in asked if before[q.text].cited & q.gold]
        print(f"{machine()}; {args.clients} clients x {args.seconds:.0f} s per phase; {len(questions)} of "
              f"{len(asked)} answerable questions cite their gold article when asked alone")
        steady = phase(url, questions, args.clients, args.seconds, add_article=False)
        adding = phase(url, questions, args.clients, args.seconds, add_article=True)
        after = references(url, questions)
        written = adding["writer"].answers
        # the writer's answers must cite the article it added, each the same text as its first one
        writer_refs = [{NEW_QUESTION: Reply(written[0][1].text, written[0][0].gold)}] if written else []
    finally:
        process.terminate()
        process.wait(30)
    headers = ["phase", "requests", "errors", "wrong article", "changed text", "answers/s", "p50 s", "p95 s", "max s"]
    rows = [row("steady", steady["tally"], steady["wall"], [before]),
            row("article added mid-run", adding["tally"], adding["wall"], [before, after])]
    if writer_refs:
        rows.append(row("… the writer asking about it", adding["writer"], adding["wall"], writer_refs))
    print(table(headers, rows))
    print(f"article added in {adding.get('add_seconds', float('nan')):.2f} s under load: "
          f"{adding.get('index') or adding.get('add_error')}")
    for name, result in (("steady", steady), ("article added", adding)):
        streamed = [seconds for _, _, seconds, stream in result["tally"].answers if stream]
        plain = [seconds for _, _, seconds, stream in result["tally"].answers if not stream]
        print(f"{name}: streamed p50/p95 {percentile(streamed, 0.5):.3f}/{percentile(streamed, 0.95):.3f} s, "
              f"plain p50/p95 {percentile(plain, 0.5):.3f}/{percentile(plain, 0.95):.3f} s")
    moved = [q.text for q in questions if after[q.text] != before[q.text]]
    print(f"{len(moved)} question(s) answered differently alone once the article was in: {moved}")
    for name, result, refs in (("steady", steady, [before]), ("adding", adding, [before, after])):
        for problem in sorted(set(result["tally"].errors + result["writer"].errors))[:5]:
            print(f"error ({name}): {problem}")
        for example in result["tally"].check(refs)[2]:
            print(f"mismatch ({name}): {example}")


if __name__ == "__main__":
    main(sys.argv[1:])
