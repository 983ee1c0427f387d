"""Replicate from the shipped config against a mock of its predictions API (mock_cloud.py): chat becomes a prompt
and a system prompt; whole answers use `Prefer: wait` and poll `urls.get` while the prediction runs; streams are read
from `urls.stream` (SSE `output` / `done`); usage comes from the prediction's metrics; tools and images are refused
by name; a failed prediction is an error in the client's format."""
from __future__ import annotations

import pytest

import gwtest as g

SHIPPED = g.REPO / "config/gateway.yaml"
MODEL = "meta/meta-llama-3-70b-instruct"


@pytest.fixture(scope="module")
def rgw(gateway_factory, mock_url) -> g.Gateway:
    gw = gateway_factory.start("replicate", config=SHIPPED, extra_env={
        "REPLICATE_BASE_URL": f"{mock_url}/replicate/v1", "REPLICATE_API_TOKEN": g.CLOUD_SECRETS["REPLICATE_API_TOKEN"]})
    yield gw
    gw.stop()


@pytest.mark.parametrize("stream", [False, True])
def test_openai_sdk_chat_to_replicate(rgw, recorder, mock, tag, stream):
    user = f"Hello {tag} {stream}"
    r = g.openai_chat(g.openai_client(rgw, recorder), stream=stream, model=MODEL, max_tokens=40,
                      messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": user}],
                      **({"stream_options": {"include_usage": True}} if stream else {}))
    assert r.text == f"echo: {user}"
    assert r.finish_reason == "stop"
    created = mock.one(user)
    assert created["path"] == "/replicate/v1/predictions"
    assert created["body"] == {"version": MODEL, "input": {"prompt": user, "system_prompt": "Be brief.", "max_tokens": 40},
                               "stream": stream}
    assert created["headers"]["authorization"] == f"Bearer {g.CLOUD_SECRETS['REPLICATE_API_TOKEN']}"
    if stream:
        assert "prefer" not in created["headers"]
        pid = created["issued"]["prediction"]
        assert [x["path"] for x in mock.requests() if x["path"] == f"/replicate/stream/{pid}"], "the stream was read"
    else:
        assert created["headers"]["prefer"] == "wait"
        assert r.usage["prompt_tokens"] == 11 and r.usage["completion_tokens"] > 0, r.usage


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_sdk_conversation_to_replicate(rgw, recorder, mock, tag, stream):
    user = f"And now {tag} {stream}?"
    r = g.anthropic_messages(g.anthropic_client(rgw, recorder), stream=stream, model=MODEL, max_tokens=40,
                             messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                                       {"role": "user", "content": user}])
    assert r.text == f"echo: {user}"
    assert r.stop_reason == "end_turn"
    assert mock.one(user)["body"]["input"]["prompt"] == f"User: Hi\n\nAssistant: Hello!\n\nUser: {user}\n\nAssistant:"


def test_a_running_prediction_is_polled_until_done(rgw, recorder, mock, tag):
    user = f"poll {tag}"
    r = g.openai_client(rgw, recorder).chat.completions.create(
        model="replicate/meta/mock-poll-model", messages=[{"role": "user", "content": user}])
    assert r.choices[0].message.content == f"echo: {user}"
    pid = mock.one(user)["issued"]["prediction"]
    polls = [x for x in mock.requests() if x["path"] == f"/replicate/v1/predictions/{pid}"]
    assert len(polls) == 2, polls  # processing, then succeeded


def test_a_failed_prediction_and_unsupported_inputs_are_clear_errors(rgw, recorder, tag):
    h = {"Authorization": f"Bearer {g.PROXY_KEY}"}
    r = g.raw_request(rgw.url, "POST", "/v1/chat/completions",
                      {"model": "replicate/meta/mock-fail-model", "messages": [{"role": "user", "content": tag}]}, h, recorder)
    assert r.status == 502 and "CUDA out of memory" in r.json()["error"]["message"], r.body
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    r = g.raw_request(rgw.url, "POST", "/v1/chat/completions",
                      {"model": MODEL, "tools": tools, "messages": [{"role": "user", "content": tag}]}, h, recorder)
    assert r.status == 400 and "tools cannot be sent" in r.json()["error"]["message"], r.body
    image = [{"type": "text", "text": "what is it"}, {"type": "image_url", "image_url": {"url": g.IMAGE_URL}}]
    r = g.raw_request(rgw.url, "POST", "/v1/chat/completions",
                      {"model": MODEL, "messages": [{"role": "user", "content": image}]}, h, recorder)
    assert r.status == 400 and "images cannot be sent" in r.json()["error"]["message"], r.body


@pytest.mark.parametrize("version", ["replicate/hello-world:" + "9dcd6d78" * 8, "9dcd6d78" * 8])
def test_community_model_versions(rgw, recorder, mock, tag, version):
    user = f"v {tag} {version[:6]}"
    r = g.openai_client(rgw, recorder).chat.completions.create(
        model=f"replicate/{version}", messages=[{"role": "user", "content": user}])
    assert r.choices[0].message.content == f"echo: {user}"
    assert mock.one(user)["body"]["version"] == version
