"""The local server itself: HTTP/1.1 keep-alive, graceful shutdown that lets in-flight streams finish, and a log
line for every answer a shutdown under load let through; upstream calls through the environment's proxy."""
from __future__ import annotations

import base64
import http.client
import http.server
import json
import socket
import subprocess
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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


class _ForwardProxy(http.server.BaseHTTPRequestHandler):
    """A forward proxy for plain-HTTP upstreams: records each request line and its Proxy-Authorization, then
    relays the request to the absolute URI it names (the way squid does for http://)."""
    seen: list[tuple[str, str | None]] = []

    def do_POST(self) -> None:
        _ForwardProxy.seen.append((self.requestline, self.headers.get("Proxy-Authorization")))
        url = urllib.parse.urlsplit(self.path)
        if not url.scheme:  # origin form: the client did not treat us as a proxy
            self.send_error(400, "proxy expects an absolute URI")
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("proxy-authorization", "connection", "host", "content-length")}
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=20)
        conn.request("POST", url.path + (f"?{url.query}" if url.query else ""), body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


def test_upstream_calls_go_through_the_proxy_the_environment_names(gateway_factory, mock, tag):
    """HTTP_PROXY with credentials: the provider call reaches the proxy in absolute form with Proxy-Authorization
    (Basic), and the client gets the provider's answer; with the mock's host in NO_PROXY it goes direct."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ForwardProxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    proxy = f"http://proxyuser:s3cret@127.0.0.1:{server.server_address[1]}"
    try:
        gw = gateway_factory.start("proxied", extra_env={"HTTP_PROXY": proxy})
        _ForwardProxy.seen.clear()
        r = g.raw_request(gw.url, "POST", "/v1/chat/completions",
                          {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"Hi {tag}"}]},
                          {"Authorization": f"Bearer {g.PROXY_KEY}"})
        assert r.status == 200, (r.status, r.body[:300])
        assert f"Hi {tag}" in r.body.decode()
        assert len(_ForwardProxy.seen) == 1, _ForwardProxy.seen
        line, auth = _ForwardProxy.seen[0]
        assert line.startswith(f"POST {mock.base}/openai/v1/chat/completions "), line
        assert auth == "Basic " + base64.b64encode(b"proxyuser:s3cret").decode(), auth
        assert len(mock.with_nonce(tag)) == 1

        direct = gateway_factory.start("proxy-bypassed", extra_env={"HTTP_PROXY": proxy, "NO_PROXY": "127.0.0.1"})
        _ForwardProxy.seen.clear()
        r = g.raw_request(direct.url, "POST", "/v1/chat/completions",
                          {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"Direct {tag}"}]},
                          {"Authorization": f"Bearer {g.PROXY_KEY}"})
        assert r.status == 200, (r.status, r.body[:300])
        assert _ForwardProxy.seen == [], "NO_PROXY=127.0.0.1 must bypass the proxy"
        assert "s3cret" not in gw.log_text() + direct.log_text()
    finally:
        server.shutdown()


def test_a_proxy_the_gateway_cannot_use_stops_it_at_start(gateway_env, tmp_path):
    """ALL_PROXY=socks5://…: the gateway exits with a message naming the problem rather than going around it."""
    env = {**gateway_env, "HOME": str(tmp_path), "ALL_PROXY": "socks5://user:pw@127.0.0.1:1080"}
    proc = subprocess.run([g.GatewayFactory.binary(), "--listen", f"127.0.0.1:{g.free_port()}",
                           "--config", str(g.CONFIG_PATH), "--state", "memory"],
                          env=env, cwd=tmp_path, capture_output=True, timeout=20)
    assert proc.returncode != 0
    err = proc.stderr.decode()
    assert "only http:// proxies" in err, err
    assert "pw@" not in err, "the proxy's password must not be printed"


def _workers(gw: g.Gateway) -> list[str]:
    tasks = Path(f"/proc/{gw.proc.pid}/task")
    return sorted(n for n in ((t / "comm").read_text().strip() for t in tasks.iterdir()) if n.startswith("worker-"))


def test_gateway_threads_sets_the_number_of_workers(gateway_factory, tag):
    """GATEWAY_THREADS=3: three worker threads, and connections spread over them all serve."""
    gw = gateway_factory.start("three-workers", extra_env={"GATEWAY_THREADS": "3"})
    assert _workers(gw) == ["worker-0", "worker-1", "worker-2"]
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"threads {tag}"}]}
    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(lambda _: g.raw_request(gw.url, "POST", "/v1/chat/completions", body,
                                                         {"Authorization": f"Bearer {g.PROXY_KEY}"}).status, range(6)))
    assert statuses == [200] * 6
    one = gateway_factory.start("one-worker", extra_env={"GATEWAY_THREADS": "1"})
    assert _workers(one) == ["worker-0"]


def test_a_bad_gateway_threads_value_stops_the_start(gateway_env, tmp_path):
    for bad in ("0", "two", "99999", "-1"):
        env = {**gateway_env, "HOME": str(tmp_path), "GATEWAY_THREADS": bad}
        proc = subprocess.run([g.GatewayFactory.binary(), "--listen", f"127.0.0.1:{g.free_port()}",
                               "--config", str(g.CONFIG_PATH), "--state", "memory"],
                              env=env, cwd=tmp_path, capture_output=True, timeout=20)
        assert proc.returncode == 2, (bad, proc.returncode, proc.stderr[-300:])
        assert "GATEWAY_THREADS" in proc.stderr.decode(), proc.stderr[-300:]
        assert "listening" not in proc.stderr.decode(), "checked before anything is opened or bound"
    # `config check` reports on the config and does not run the server: the variable is not its business.
    env = {**gateway_env, "HOME": str(tmp_path), "GATEWAY_THREADS": "two"}
    proc = subprocess.run([g.GatewayFactory.binary(), "config", "check", "--config", str(g.CONFIG_PATH)],
                          env=env, cwd=tmp_path, capture_output=True, timeout=20)
    assert proc.returncode == 0, proc.stderr[-300:]


def test_spend_takes_get_only(gateway, recorder):
    for method in ("POST", "DELETE"):
        r = g.raw_request(gateway.url, method, "/v1/spend", {} if method == "POST" else None,
                          {"Authorization": f"Bearer {g.PROXY_KEY}"}, recorder)
        assert r.status == 405, (method, r.status, r.body[:200])
        assert "error" in r.json(), r.body[:200]
