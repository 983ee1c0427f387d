"""The local server itself: HTTP/1.1 keep-alive and graceful shutdown that lets in-flight streams finish."""
from __future__ import annotations

import http.client
import json
import socket
import time

import gwtest as g


def test_keep_alive_reuses_one_connection(gateway, tag):
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    headers = {"Authorization": f"Bearer {g.PROXY_KEY}", "Content-Type": "application/json"}
    conn.request("GET", "/health")
    r = conn.getresponse()
    assert r.status == 200 and json.loads(r.read())["status"] == "ok"
    sock = conn.sock
    for i in range(3):
        body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"Hi {tag} {i}"}]})
        conn.request("POST", "/v1/chat/completions", body=body, headers=headers)
        r = conn.getresponse()
        data = json.loads(r.read())
        assert r.status == 200, data
        assert data["choices"][0]["message"]["content"] == f"echo: Hi {tag} {i}"
        assert (r.getheader("connection") or "").lower() != "close"
        assert conn.sock is sock, "the gateway closed a keep-alive connection"
    conn.close()


def test_graceful_shutdown_lets_an_inflight_stream_finish(fresh_gateway, recorder, tag):
    rid = f"rid-{tag}"
    client = g.openai_client(fresh_gateway, recorder)
    stream = client.chat.completions.create(
        model="openai/mock-drip", stream=True, extra_headers={"X-Request-ID": rid},
        messages=[{"role": "user", "content": f"Hi {tag}"}])
    it = iter(stream)
    deltas = 0
    while deltas < 2:
        ch = next(it)
        deltas += sum(1 for c in ch.choices if c.delta.content)
    t0 = time.monotonic()
    fresh_gateway.proc.send_signal(g.signal.SIGTERM)
    # New connections are refused soon after the signal...
    refused = False
    while time.monotonic() - t0 < 3:
        try:
            socket.create_connection(("127.0.0.1", fresh_gateway.port), timeout=0.2).close()
            time.sleep(0.05)
        except OSError:
            refused = True
            break
    assert refused, "the gateway kept accepting connections after SIGTERM"
    # ...while the stream in flight runs to its end.
    finish = None
    for ch in it:
        deltas += sum(1 for c in ch.choices if c.delta.content)
        finish = next((c.finish_reason for c in ch.choices if c.finish_reason), finish)
    assert finish == "stop", "the in-flight stream was cut by the shutdown"
    assert deltas >= 40, f"only {deltas} deltas arrived"
    assert fresh_gateway.proc.wait(timeout=10) == 0, "the gateway did not exit cleanly after its last stream"
    assert fresh_gateway.log_for(rid)["outcome"] == "ok"
