"""The local server itself: HTTP/1.1 keep-alive, graceful shutdown that lets in-flight streams finish, and a log
line for every answer a shutdown under load let through."""
from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

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


def test_a_shutdown_under_load_loses_no_log_line(fresh_gateway, tag):
    """Log lines are buffered (one write per batch, not per request) and written out at shutdown: 48 clients
    send requests (whole and streamed) without pause; SIGTERM comes in the middle. Every request that got an
    answer has its one log line, and the gateway exits cleanly."""
    answered: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(n: int) -> None:
        i = 0
        while not stop.is_set():
            rid = f"load-{tag}-{n}-{i}"
            i += 1
            body = {"model": "gpt-4o-mini", "stream": i % 3 == 0,
                    "messages": [{"role": "user", "content": f"load {tag} {n} {i}"}]}
            try:
                r = g.raw_request(fresh_gateway.url, "POST", "/v1/chat/completions", body, timeout=20,
                                  headers={"Authorization": f"Bearer {g.PROXY_KEY}", "X-Request-ID": rid})
            except (OSError, AssertionError, http.client.HTTPException):
                return  # the listener closed: requests after it get no answer, and need no line
            if r.status == 200:
                with lock:
                    answered.append(rid)

    with ThreadPoolExecutor(max_workers=48) as pool:
        for n in range(48):
            pool.submit(client, n)
        deadline = time.monotonic() + 20
        while len(answered) < 300 and time.monotonic() < deadline:
            time.sleep(0.01)
        fresh_gateway.proc.send_signal(g.signal.SIGTERM)
        assert fresh_gateway.proc.wait(timeout=30) == 0, "the gateway did not exit cleanly"
        stop.set()
    assert len(answered) >= 300, f"only {len(answered)} answers before the signal"
    logged = {e["request_id"] for e in fresh_gateway.log_entries() if "outcome" in e}
    missing = [rid for rid in answered if rid not in logged]
    assert not missing, f"{len(missing)} of {len(answered)} answered requests have no log line: {missing[:5]}"
