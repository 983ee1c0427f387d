"""Real coding agents as clients (the first slice of the agents issue): Claude Code (npm
`@anthropic-ai/claude-code`, pinned in tests/lib.sh) run non-interactively and offline (`claude -p`, telemetry and
updates off) against the gateway, upstreams mocked. The agent must exit 0 with the mock's answer as its result,
and the test reads what reached the upstream.

- `claude-sonnet-4-5` (an Anthropic upstream, same format): Claude Code's betas and version reach the upstream,
  the proxy key does not; the mock calls one of the agent's own tools, the agent runs it and sends the result back.
- `gpt-4o` (an OpenAI upstream): Claude Code enables mid-conversation system messages, adaptive thinking and
  `output_config.effort` for non-Claude names; they arrive as an in-place system message and `reasoning_effort`.

The Codex CLI (`codex exec`, the Responses API, a custom provider pointed at the gateway): natively to OpenAI,
and translated to Anthropic with a tool round trip. Translated, Codex needs its multi-agent tools and hosted web
search off (`--disable multi_agent -c web_search="disabled"`): it declares them as a `namespace` tool and a hosted
`web_search` tool, which the gateway refuses by name on translated routes.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import gwtest as g

CLAUDE = os.environ.get("CLAUDE_BIN", "")
CODEX = os.environ.get("CODEX_BIN", "")


def claude(gw: g.Gateway, home: Path, model: str, prompt: str) -> tuple[subprocess.CompletedProcess, dict]:
    """Runs `claude -p prompt`; returns the process and its final `result` event."""
    assert CLAUDE and Path(CLAUDE).exists(), "CLAUDE_BIN names no Claude Code binary (tests/run.sh installs it)"
    home.mkdir(parents=True, exist_ok=True)
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "ANTHROPIC_BASE_URL": gw.url, "ANTHROPIC_API_KEY": g.PROXY_KEY,
           "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1",
           "DISABLE_ERROR_REPORTING": "1", "NO_PROXY": "127.0.0.1"}
    p = subprocess.run([CLAUDE, "-p", prompt, "--model", model, "--output-format", "stream-json", "--verbose"],
                       env=env, cwd=home, capture_output=True, text=True, timeout=120)
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


def test_claude_code_on_an_openai_route(gateway, mock, tag, tmp_path):
    _, result = claude(gateway, tmp_path / "home", "gpt-4o", f"hello {tag}")
    (r,) = mock.with_nonce(tag)
    assert r["path"] == "/openai/v1/chat/completions"
    body = r["body"]
    roles = [m["role"] for m in body["messages"]]
    assert roles[0] == "system" and "system" in roles[1:], f"a mid-conversation system message stays in place: {roles}"
    assert body["reasoning_effort"] == "high", "output_config.effort"
    assert result["result"].startswith("echo:") and result["result"].endswith(f"hello {tag}")


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
    events = codex(gateway, tmp_path / "home", "claude-sonnet-4-5", f"hello {tag}",
                   "--disable", "multi_agent", "-c", 'web_search="disabled"')
    first, second = mock.with_nonce(tag)
    assert first["path"] == second["path"] == "/anthropic/v1/messages"
    (use,) = [b for b in second["body"]["messages"][1]["content"] if b["type"] == "tool_use"]
    (res,) = [b for b in second["body"]["messages"][2]["content"] if b["type"] == "tool_result"]
    assert res["tool_use_id"] == use["id"], "Codex ran the mock's call and answered it"
    assert messages(events)[-1].startswith("tool result:"), events
