"""Real coding agents as clients (the first slice of the agents issue): Claude Code (npm
`@anthropic-ai/claude-code`, pinned in tests/lib.sh) run non-interactively and offline (`claude -p`, telemetry and
updates off) against the gateway, upstreams mocked. The agent must exit 0 with the mock's answer as its result,
and the test reads what reached the upstream.

- `claude-sonnet-4-5` (an Anthropic upstream, same format): Claude Code's betas and version reach the upstream,
  the proxy key does not; the mock calls one of the agent's own tools, the agent runs it and sends the result back.
- `gpt-4o` (an OpenAI upstream): Claude Code enables mid-conversation system messages, adaptive thinking and
  `output_config.effort` for non-Claude names; they arrive as an in-place system message and `reasoning_effort`,
  and a call to the agent's `Read` tool round-trips.

- `gemini-2.5-flash` (Gemini) and `us.anthropic.claude-3-7-sonnet-...` (Bedrock), on the matrix gateway: the mock
  asks for the agent's `Read` tool (a `mock-call` directive in the prompt), the agent reads a file in a scratch
  directory and its content comes back in the tool result.

The Gemini CLI (`gemini -p`, API-key auth, `GOOGLE_GEMINI_BASE_URL` at the gateway) on a Gemini route (same format),
and translated to Anthropic and to OpenAI: each time the mock asks for the CLI's `list_directory` on a scratch
directory and the listing reaches the upstream as the tool result.

The Codex CLI (`codex exec`, the Responses API, a custom provider pointed at the gateway), with no flags: natively
to OpenAI, and translated to Anthropic with a shell-tool round trip; there its `namespace` tools flatten to
`{namespace}__{name}` functions (and calls come back namespaced) and its hosted `web_search` offer is left out.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

import gwtest as g

CLAUDE = os.environ.get("CLAUDE_BIN", "")
CODEX = os.environ.get("CODEX_BIN", "")
GEMINI = os.environ.get("GEMINI_CLI_BIN", "")
MATRIX = g.HERE / "gateway.matrix.yaml"


@pytest.fixture(scope="module")
def mgw(gateway_factory) -> g.Gateway:
    """A gateway with every upstream format (Gemini, Bedrock and Cohere besides OpenAI and Anthropic)."""
    try:
        gw = gateway_factory.start("agents", config=MATRIX)
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    yield gw
    gw.stop()


def scratch(tmp_path: Path, tag: str) -> tuple[Path, str]:
    """A directory holding one file whose name the test looks for in the tool result."""
    d = tmp_path / "work"
    d.mkdir(parents=True, exist_ok=True)
    name = f"marker-{tag}.txt"
    (d / name).write_text(f"content-of-{tag}\n")
    return d, name


def claude(gw: g.Gateway, home: Path, model: str, prompt: str,
           cwd: Path | None = None) -> tuple[subprocess.CompletedProcess, dict]:
    """Runs `claude -p prompt` (in `cwd`, default `home`); returns the process and its final `result` event."""
    assert CLAUDE and Path(CLAUDE).exists(), "CLAUDE_BIN names no Claude Code binary (tests/run.sh installs it)"
    home.mkdir(parents=True, exist_ok=True)
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "ANTHROPIC_BASE_URL": gw.url, "ANTHROPIC_API_KEY": g.PROXY_KEY,
           "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1",
           "DISABLE_ERROR_REPORTING": "1", "NO_PROXY": "127.0.0.1"}
    p = subprocess.run([CLAUDE, "-p", prompt, "--model", model, "--output-format", "stream-json", "--verbose"],
                       env=env, cwd=cwd or home, capture_output=True, text=True, timeout=120)
    events = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    results = [e for e in events if e.get("type") == "result"]
    assert p.returncode == 0 and results, f"exit {p.returncode}: {p.stdout[-1500:]} {p.stderr[-1500:]}"
    assert not results[-1].get("is_error"), results[-1]
    return p, results[-1]


def test_claude_code_on_an_anthropic_route_runs_a_tool(gateway, mock, tag, tmp_path):
    _, result = claude(gateway, tmp_path / "home", "claude-sonnet-4-5", f"hello {tag}")
    first, second = mock.with_nonce(tag)
    for r in (first, second):
        assert r["path"] == "/anthropic/v1/messages"
        h = r["headers"]
        assert h["x-api-key"] == g.UPSTREAM_KEYS["anthropic"] and h["anthropic-version"] == "2023-06-01"
        assert "claude-code-20250219" in h["anthropic-beta"]
        assert g.PROXY_KEY not in json.dumps(r["headers"]) + json.dumps(r["body"])
        assert len(r["body"]["tools"]) >= 10, "the agent's own tools pass through"
    call = second["body"]["messages"][1]["content"]
    (use,) = [b for b in call if b["type"] == "tool_use"]
    (res,) = [b for b in second["body"]["messages"][2]["content"] if b["type"] == "tool_result"]
    assert res["tool_use_id"] == use["id"], "the agent ran the mock's call and answered it"
    assert result["result"].startswith("tool result:")


def test_claude_code_on_an_openai_route_reads_a_file(gateway, mock, tag, tmp_path):
    work, marker = scratch(tmp_path, tag)
    _, result = claude(gateway, tmp_path / "home", "gpt-4o", read_prompt(work / marker, tag), cwd=work)
    first, second = mock.with_nonce(tag)
    assert first["path"] == second["path"] == "/openai/v1/chat/completions"
    body = first["body"]
    roles = [m["role"] for m in body["messages"]]
    assert roles[0] == "system" and "system" in roles[1:], f"a mid-conversation system message stays in place: {roles}"
    assert body["reasoning_effort"] == "high", "output_config.effort"
    (call,) = [c for m in second["body"]["messages"] if m["role"] == "assistant" for c in m.get("tool_calls") or []]
    (tool,) = [m for m in second["body"]["messages"] if m["role"] == "tool"]
    assert call["function"]["name"] == "Read" and tool["tool_call_id"] == call["id"]
    assert f"content-of-{tag}" in json.dumps(tool["content"]), "the agent read the file"
    assert result["result"].startswith("tool result:") and f"content-of-{tag}" in result["result"]


def read_prompt(path: Path, tag: str) -> str:
    return f'mock-call Read {{"file_path": "{path}"}} {tag}'


def test_claude_code_on_a_gemini_route_reads_a_file(mgw, mock, tag, tmp_path):
    work, marker = scratch(tmp_path, tag)
    _, result = claude(mgw, tmp_path / "home", "gemini-2.5-flash", read_prompt(work / marker, tag), cwd=work)
    first, second = mock.with_nonce(tag)
    assert first["path"] == second["path"] == "/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    assert first["headers"]["x-goog-api-key"] == g.UPSTREAM_KEYS["gemini"]
    (call,) = [p["functionCall"] for p in second["body"]["contents"][-2]["parts"] if "functionCall" in p]
    (resp,) = [p["functionResponse"] for p in second["body"]["contents"][-1]["parts"] if "functionResponse" in p]
    assert call["name"] == resp["name"] == "Read" and call["args"] == {"file_path": str(work / marker)}
    assert f"content-of-{tag}" in json.dumps(resp["response"]), "the agent read the file"
    assert result["result"].startswith("tool result:") and f"content-of-{tag}" in result["result"]


def test_claude_code_on_a_bedrock_route_reads_a_file(mgw, mock, tag, tmp_path):
    work, marker = scratch(tmp_path, tag)
    model = "us.anthropic.claude-3-7-sonnet-20250219-v1:0"
    _, result = claude(mgw, tmp_path / "home", model, read_prompt(work / marker, tag), cwd=work)
    first, second = mock.with_nonce(tag)
    assert first["path"] == second["path"] == f"/bedrock/model/{model.replace(':', '%3A')}/converse-stream"
    assert first["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 ")
    (use,) = [b["toolUse"] for b in second["body"]["messages"][-2]["content"] if "toolUse" in b]
    (res,) = [b["toolResult"] for b in second["body"]["messages"][-1]["content"] if "toolResult" in b]
    assert use["name"] == "Read" and res["toolUseId"] == use["toolUseId"]
    assert f"content-of-{tag}" in json.dumps(res["content"]), "the agent read the file"
    assert result["result"].startswith("tool result:") and f"content-of-{tag}" in result["result"]


def gemini_cli(gw: g.Gateway, home: Path, model: str, prompt: str, cwd: Path) -> dict:
    """Runs `gemini -p prompt --output-format json` with API-key auth at the gateway; returns its JSON result."""
    assert GEMINI and Path(GEMINI).exists(), "GEMINI_CLI_BIN names no Gemini CLI (tests/run.sh installs it)"
    (home / ".gemini").mkdir(parents=True, exist_ok=True)
    (home / ".gemini" / "settings.json").write_text(json.dumps({
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "privacy": {"usageStatisticsEnabled": False}, "telemetry": {"enabled": False},
        "general": {"disableAutoUpdate": True, "disableUpdateNag": True}}))
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "GEMINI_API_KEY": g.PROXY_KEY,
           "GOOGLE_GEMINI_BASE_URL": gw.url, "GEMINI_CLI_TRUST_WORKSPACE": "true", "NO_PROXY": "127.0.0.1",
           "NO_COLOR": "1"}
    p = subprocess.run([GEMINI, "-p", prompt, "-m", model, "--output-format", "json"], env=env, cwd=cwd,
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert p.returncode == 0 and "{" in p.stdout, f"exit {p.returncode}: {p.stdout[-1500:]} {p.stderr[-1500:]}"
    out = json.loads(p.stdout[p.stdout.index("{"):])
    assert "error" not in out, out
    return out


def list_dir_prompt(work: Path, tag: str) -> str:
    return f'mock-call list_directory {{"dir_path": "{work}"}} {tag}'


def test_gemini_cli_on_a_gemini_route_lists_files(mgw, mock, tag, tmp_path):
    work, marker = scratch(tmp_path, tag)
    out = gemini_cli(mgw, tmp_path / "home", "gemini-2.5-flash", list_dir_prompt(work, tag), work)
    first, second = mock.with_nonce(tag)
    for r in (first, second):
        assert r["path"] == "/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent"
        assert r["headers"]["x-goog-api-key"] == g.UPSTREAM_KEYS["gemini"]
        assert g.PROXY_KEY not in json.dumps(r["headers"]) + json.dumps(r["body"])
    names = [d["name"] for t in first["body"]["tools"] for d in t.get("functionDeclarations") or []]
    assert "list_directory" in names and "read_file" in names, "the CLI's own tools pass through"
    (resp,) = [p["functionResponse"] for p in second["body"]["contents"][-1]["parts"] if "functionResponse" in p]
    assert resp["name"] == "list_directory" and marker in json.dumps(resp["response"])
    assert out["response"].startswith("tool result:") and marker in out["response"]


def test_gemini_cli_translated_to_anthropic_lists_files(mgw, mock, tag, tmp_path):
    work, marker = scratch(tmp_path, tag)
    out = gemini_cli(mgw, tmp_path / "home", "claude-sonnet-4-5", list_dir_prompt(work, tag), work)
    first, second = mock.with_nonce(tag)
    assert first["path"] == second["path"] == "/anthropic/v1/messages"
    assert {t["name"] for t in first["body"]["tools"]} >= {"list_directory", "read_file"}
    (use,) = [b for b in second["body"]["messages"][-2]["content"] if b["type"] == "tool_use"]
    (res,) = [b for b in second["body"]["messages"][-1]["content"] if b["type"] == "tool_result"]
    assert use["name"] == "list_directory" and res["tool_use_id"] == use["id"]
    assert marker in json.dumps(res["content"])
    assert out["response"].startswith("tool result:") and marker in out["response"]


def test_gemini_cli_translated_to_openai_lists_files(mgw, mock, tag, tmp_path):
    work, marker = scratch(tmp_path, tag)
    out = gemini_cli(mgw, tmp_path / "home", "gpt-4o", list_dir_prompt(work, tag), work)
    first, second = mock.with_nonce(tag)
    assert first["path"] == second["path"] == "/openai/v1/chat/completions"
    (call,) = second["body"]["messages"][-2]["tool_calls"]
    tool = second["body"]["messages"][-1]
    assert call["function"]["name"] == "list_directory" and tool["tool_call_id"] == call["id"]
    assert marker in json.dumps(tool["content"])
    assert out["response"].startswith("tool result:") and marker in out["response"]


def codex(gw: g.Gateway, home: Path, model: str, prompt: str, *extra: str) -> list[dict]:
    """Runs `codex exec --json prompt` with the gateway as a Responses provider; returns its events."""
    assert CODEX and Path(CODEX).exists(), "CODEX_BIN names no Codex CLI binary (tests/run.sh installs it)"
    (home / "codex").mkdir(parents=True, exist_ok=True)
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "CODEX_HOME": str(home / "codex"), "GW_KEY": g.PROXY_KEY,
           "NO_PROXY": "127.0.0.1"}
    provider = ["-c", "model_provider=gw", "-c", "model_providers.gw.name=gw", "-c", "model_providers.gw.env_key=GW_KEY",
                "-c", f"model_providers.gw.base_url={gw.url}/v1", "-c", "model_providers.gw.wire_api=responses"]
    p = subprocess.run([CODEX, "exec", "--json", "--skip-git-repo-check", "-m", model, *provider, *extra, prompt],
                       env=env, cwd=home, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    events = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    assert p.returncode == 0 and any(e.get("type") == "turn.completed" for e in events), \
        f"exit {p.returncode}: {p.stdout[-1500:]} {p.stderr[-1500:]}"
    return events


def messages(events: list[dict]) -> list[str]:
    return [e["item"]["text"] for e in events if e.get("type") == "item.completed" and e["item"].get("type") == "agent_message"]


def test_codex_on_a_native_openai_route(gateway, mock, tag, tmp_path):
    events = codex(gateway, tmp_path / "home", "gpt-4o", f"hello {tag}")
    reqs = mock.with_nonce(tag)
    assert reqs and all(r["path"] == "/openai/v1/responses" for r in reqs)
    for r in reqs:
        assert r["headers"]["authorization"] == f"Bearer {g.UPSTREAM_KEYS['openai']}"
        assert g.PROXY_KEY not in json.dumps(r["headers"]) + json.dumps(r["body"])
    assert any(t.get("type") == "namespace" for t in reqs[0]["body"]["tools"]), "the native route passes every tool"
    assert messages(events), events


def test_codex_on_a_translated_anthropic_route_runs_a_tool(gateway, mock, tag, tmp_path):
    """Codex as it comes (no flags): its sub-agent namespace goes upstream as flat functions, its hosted web
    search is left out, and a call to one of its shell tools round-trips."""
    events = codex(gateway, tmp_path / "home", "claude-sonnet-4-5", f'mock-call exec_command {{"cmd": "echo hi-{tag}"}}')
    first, second = mock.with_nonce(tag)
    assert first["path"] == second["path"] == "/anthropic/v1/messages"
    names = [t["name"] for t in first["body"]["tools"]]
    assert any(n.startswith("multi_agent_v1__") for n in names), names
    assert "web_search" not in json.dumps(first["body"]["tools"])
    (use,) = [b for b in second["body"]["messages"][1]["content"] if b["type"] == "tool_use"]
    (res,) = [b for b in second["body"]["messages"][2]["content"] if b["type"] == "tool_result"]
    assert use["name"] == "exec_command" and res["tool_use_id"] == use["id"], "Codex ran the mock's call"
    assert f"hi-{tag}" in json.dumps(res["content"]), "the shell command's output came back"
    assert messages(events)[-1].startswith("tool result:"), events


def test_codex_gets_namespaced_calls_back_on_a_translated_route(gateway, mock, tag, tmp_path):
    """The model calls a namespaced function under its flat name; Codex receives `namespace` + `name` and runs
    its own sub-agent tool (an unknown name would come back as an unsupported call)."""
    events = codex(gateway, tmp_path / "home", "claude-sonnet-4-5",
                   f'mock-call multi_agent_v1__close_agent {{"target": "nobody-{tag}"}}')
    first, second = mock.with_nonce(tag)
    (use,) = [b for b in second["body"]["messages"][1]["content"] if b["type"] == "tool_use"]
    (res,) = [b for b in second["body"]["messages"][2]["content"] if b["type"] == "tool_result"]
    assert use["name"] == "multi_agent_v1__close_agent" and res["tool_use_id"] == use["id"]
    # Codex's own close_agent handler answered (it rejects the made-up id by name).
    assert f"invalid agent id nobody-{tag}" in json.dumps(res["content"]), res
    assert messages(events)[-1].startswith("tool result:"), events
