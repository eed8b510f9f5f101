"""The scripted LLM server must be faithful enough for the real ``openai`` client."""
import json
import time

import openai
import pytest

from .llm_server import FIXTURES, Reply, ScriptedLLMServer, fixture_reply, load_fixture

MESSAGES = [
    {"role": "system", "content": "Answer from the sources; cite them as [n]."},
    {"role": "user", "content": "Sources:\n[1] Source one\n[2] Source two\n\nQuestion: What is the capital of France?"},
]


def test_non_streaming_roundtrip(llm_server, llm_client):
    llm_server.responder = lambda req: "Paris is the capital [1]."
    resp = llm_client().chat.completions.create(model="m1", messages=MESSAGES)
    assert resp.choices[0].message.content == "Paris is the capital [1]."
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.object == "chat.completion" and resp.model == "m1"
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens


def test_streaming_deltas_concatenate(llm_server, llm_client):
    text = "Line one [1].\nLine  two [2], with spaces. "
    llm_server.responder = lambda req: text
    stream = llm_client().chat.completions.create(model="m", messages=MESSAGES, stream=True)
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(deltas) > 3
    assert "".join(deltas) == text
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.object == "chat.completion.chunk" for c in chunks)


def test_streaming_usage_when_requested(llm_server, llm_client):
    llm_server.responder = lambda req: "a b c"
    stream = llm_client().chat.completions.create(
        model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True})
    last = list(stream)[-1]
    assert last.choices == [] and last.usage.completion_tokens == 3


def test_default_responder_echoes_last_user_message(llm_server, llm_client):
    resp = llm_client().chat.completions.create(model="m", messages=MESSAGES)
    assert resp.choices[0].message.content == MESSAGES[-1]["content"]


@pytest.mark.parametrize("status, exc", [
    (500, openai.InternalServerError),
    (429, openai.RateLimitError),
    (401, openai.AuthenticationError),
])
@pytest.mark.parametrize("stream", [False, True])
def test_error_statuses_map_to_openai_exceptions(llm_server, llm_client, status, exc, stream):
    llm_server.responder = lambda req: Reply(status=status, error_message="boom")
    with pytest.raises(exc) as info:
        llm_client().chat.completions.create(model="m", messages=MESSAGES, stream=stream)
    assert info.value.status_code == status
    assert "boom" in info.value.message


def test_delay_longer_than_timeout_raises_timeout(llm_server, llm_client):
    llm_server.responder = lambda req: Reply(text="too late", delay=2.0)
    start = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        llm_client(timeout=0.5).chat.completions.create(model="m", messages=MESSAGES)
    assert time.monotonic() - start < 1.5


def test_close_is_prompt_while_handler_sleeps(llm_client):
    server = ScriptedLLMServer(responder=lambda req: Reply(delay=30)).start()
    try:
        with pytest.raises(openai.APITimeoutError):
            llm_client(server, timeout=0.3).chat.completions.create(model="m", messages=MESSAGES)
    finally:
        start = time.monotonic()
        server.close()  # the handler is still sleeping in its 30 s delay
    assert time.monotonic() - start < 1.0


def test_chunk_delay_streams_incrementally(llm_server, llm_client):
    llm_server.responder = lambda req: Reply(text="one two three", chunk_delay=0.1)
    client = llm_client()
    start = time.monotonic()
    stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    first = next(iter(stream))
    assert first.choices[0].delta.role == "assistant"
    assert time.monotonic() - start < 0.3  # first event arrives before the rest are produced
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "one two three"
    assert time.monotonic() - start >= 0.4  # 4 gaps of 0.1 s between the 5 events


def test_requests_are_recorded(llm_server, llm_client):
    llm_client().chat.completions.create(model="gpt-test", messages=MESSAGES, temperature=0)
    rec = llm_server.last_request
    assert rec.method == "POST" and rec.path == "/v1/chat/completions"
    assert rec.headers["authorization"] == "Bearer test-key"
    assert rec.body["model"] == "gpt-test"
    assert rec.body["messages"] == MESSAGES
    assert rec.body["temperature"] == 0
    assert "[2] Source two" in rec.body["messages"][-1]["content"]


def test_sequence_500_then_ok_succeeds_with_one_retry(llm_server, llm_client):
    llm_server.script(Reply(status=500, headers={"retry-after-ms": "10"}), "recovered")  # fast backoff
    resp = llm_client(max_retries=1).chat.completions.create(model="m", messages=MESSAGES)
    assert resp.choices[0].message.content == "recovered"
    assert len(llm_server.chat_requests) == 2
    # once the script is used up, the responder answers again
    resp = llm_client().chat.completions.create(model="m", messages=MESSAGES)
    assert resp.choices[0].message.content == MESSAGES[-1]["content"]


def test_models_endpoint(llm_client):
    with ScriptedLLMServer(model="my-model") as server:
        models = llm_client(server).models.list()
        assert [m.id for m in models.data] == ["my-model"]
        assert server.last_request.path == "/v1/models"


def test_unknown_path_is_404(llm_server, llm_client):
    with pytest.raises(openai.NotFoundError):
        llm_client().embeddings.create(model="m", input="x")


GOLDEN = sorted(path.stem for path in FIXTURES.glob("*.json"))


def recorded_content(fixture: dict) -> str:
    """What the recorded events carry, read with json (independently of the server's replay code)."""
    events = [json.loads(line[6:]) for line in fixture["sse"] if line.startswith("data: {")]
    return "".join(c["delta"].get("content") or "" for e in events for c in e["choices"])


def test_golden_transcripts_are_raw_llama_cpp_streams():
    assert len(GOLDEN) >= 6
    for name in GOLDEN:
        fixture = load_fixture(name)
        assert fixture["sse"][-1] == "data: [DONE]", name
        assert all(line == ":" or line.startswith("data: ") for line in fixture["sse"]), name
        assert fixture["messages"][-1]["role"] == "user" and fixture["question"] in fixture["messages"][-1]["content"]


@pytest.mark.parametrize("name", GOLDEN)
def test_replay_streams_the_recorded_events_through_the_real_client(llm_server, llm_client, name):
    fixture = load_fixture(name)
    llm_server.script(fixture_reply(name))
    chunks = list(llm_client().chat.completions.create(model="local", messages=fixture["messages"], stream=True))
    assert len(chunks) == sum(line.startswith("data: {") for line in fixture["sse"])  # one chunk per event
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == recorded_content(fixture)
    assert chunks[-1].choices[0].finish_reason == fixture["finish_reason"]
    assert llm_server.last_request.body["messages"] == fixture["messages"]


@pytest.mark.parametrize("name", GOLDEN)
def test_replay_answers_non_streaming_requests_with_the_whole_reply(llm_server, llm_client, name):
    fixture = load_fixture(name)
    llm_server.script(fixture_reply(name))
    response = llm_client().chat.completions.create(model="local", messages=fixture["messages"])
    assert response.choices[0].message.content == recorded_content(fixture)
    assert response.choices[0].finish_reason == fixture["finish_reason"]


def test_replay_paces_events_like_a_token_stream(llm_server, llm_client):
    name = GOLDEN[0]
    events = sum(line.startswith("data: ") for line in load_fixture(name)["sse"])
    llm_server.script(fixture_reply(name, chunk_delay=0.05))
    start = time.monotonic()
    list(llm_client().chat.completions.create(model="local", messages=MESSAGES, stream=True))
    assert time.monotonic() - start >= 0.05 * (events - 1)


def test_raw_body_is_sent_as_is(llm_server, llm_client):
    llm_server.script(Reply(body=b"<html>Web UI</html>"))
    assert llm_client().chat.completions.create(model="m", messages=MESSAGES) == "<html>Web UI</html>"
