"""Hardening of the local server: slow and idle connections, connection and fd limits, request bodies checked
before they are read, upstream answers checked before they are forwarded, and limits on what one request may
ask for. Each test names the hardening item it proves (h1 ... h15).

The limits are `server.*` keys in the gateway YAML; a test that needs small ones starts a gateway of its own
with a copy of gateway.test.yaml whose `server:` block carries them (`start_gateway`). Raw sockets stand in
for clients that no SDK would be (slowloris, truncated bodies, clients that leave early).
"""

from __future__ import annotations

import json
import os
import select
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import openai
import pytest

import gwtest as g

OA_PATH, AN_PATH = "/v1/chat/completions", "/v1/messages"
OA_AUTH = {"Authorization": f"Bearer {g.PROXY_KEY}"}
AN_AUTH = {"x-api-key": g.PROXY_KEY, "anthropic-version": "2023-06-01"}
CLIENTS = pytest.mark.parametrize("client", ["openai", "anthropic"])


def path_of(client: str) -> str:
    return OA_PATH if client == "openai" else AN_PATH


def auth_of(client: str) -> dict[str, str]:
    return dict(OA_AUTH if client == "openai" else AN_AUTH)


def chat_body(client: str, model: str, text: str, **extra: Any) -> dict:
    body: dict = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
    if client == "anthropic":
        body.setdefault("max_tokens", 100)
    return body


def assert_error(client: str, r: g.Raw, status) -> dict:
    return g.assert_openai_error(r, status) if client == "openai" else g.assert_anthropic_error(r, status)


def answer_text(client: str, body: dict) -> str:
    return body["choices"][0]["message"]["content"] if client == "openai" else body["content"][0]["text"]


# ------------------------------------------------------------------------------------------------
# the gateway process, measured from outside


def rss_kb(pid: int) -> int:
    """Resident set size (VmRSS) of a process, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()  # fields[0] is field 3 (state): utime is 14, stime 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------------------------
# per-test configurations: gateway.test.yaml with a different `server:` block (and extra top-level YAML)


def write_config(path: Path, server: dict[str, Any], extra: str = "") -> Path:
    """gateway.test.yaml with `server` merged into its `server:` block and `extra` appended."""
    lines = g.CONFIG_PATH.read_text().splitlines(keepends=True)
    out: list[str] = []
    i = 0
    while i < len(lines):
        if lines[i].rstrip() == "server:":
            merged: dict[str, Any] = {}
            i += 1
            while i < len(lines) and lines[i].startswith((" ", "\t")):
                key, _, value = lines[i].split("#", 1)[0].strip().partition(":")
                merged[key.strip()] = value.strip()
                i += 1
            merged.update(server)
            out.append("server:\n" + "".join(f"  {k}: {v}\n" for k, v in merged.items()))
            continue
        out.append(lines[i])
        i += 1
    text = "".join(out)
    assert text.count("\nserver:\n") == 1, "gateway.test.yaml has no top-level `server:` block"
    path.write_text(text + ("\n" + extra.strip() + "\n" if extra else ""))
    return path


@pytest.fixture
def start_gateway(gateway_factory, tmp_path, request):
    """start_gateway(server={...}, extra="yaml", rlimit_nofile=N): a gateway of this test's own; stopped after it."""
    started: list[g.Gateway] = []

    def start(server: dict[str, Any] | None = None, extra: str = "", rlimit_nofile: int | None = None) -> g.Gateway:
        cfg = write_config(tmp_path / f"gateway-{len(started)}.yaml", server or {}, extra)
        try:
            gw = gateway_factory.start(request.node.name, config=cfg, rlimit_nofile=rlimit_nofile)
        except RuntimeError as e:
            pytest.fail(f"gateway with {cfg.name} ({server}) did not start: {e}", pytrace=False)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        if gw.alive():
            gw.proc.kill()  # no graceful shutdown: some tests leave connections hanging on purpose
            gw.proc.wait(timeout=10)


# ------------------------------------------------------------------------------------------------
# raw HTTP/1.1 over a socket


def connect(gw: g.Gateway, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", gw.port), timeout=timeout)


def request_bytes(method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None,
                  content_length: int | None = None) -> bytes:
    """A request head (and body); `content_length` announces a length other than the body's."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    hdrs = dict(headers or {})
    if body is not None or content_length is not None:
        hdrs.setdefault("Content-Type", "application/json")
        hdrs.setdefault("Content-Length", str(content_length if content_length is not None else len(body or b"")))
    lines += [f"{k}: {v}" for k, v in hdrs.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


@dataclass
class Resp:
    status: int
    headers: dict[str, str]
    body: bytes
    raw_head: bytes = b""
    complete: bool = True  # the body ended where its framing said (not by a closed connection)

    def raw(self) -> g.Raw:
        return g.Raw(self.status, self.headers, self.body)

    def json(self) -> Any:
        return self.raw().json()


class _Reader:
    def __init__(self, sock: socket.socket, deadline: float, tick: Callable[[], None] | None):
        self.sock, self.deadline, self.tick = sock, deadline, tick
        self.buf = b""
        self.eof = False
        self.total = 0

    def fill(self) -> bool:
        """Reads more into buf; False at EOF (or a reset). Raises TimeoutError past the deadline."""
        while True:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.sock.settimeout(min(left, 0.05))
            try:
                d = self.sock.recv(256 * 1024)
            except socket.timeout:
                if self.tick:
                    self.tick()
                continue
            except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
                d = b""
            if self.tick:
                self.tick()
            if not d:
                self.eof = True
                return False
            self.total += len(d)
            self.buf += d
            return True

    def line(self) -> bytes | None:
        while b"\r\n" not in self.buf:
            if not self.fill():
                return None
        ln, _, self.buf = self.buf.partition(b"\r\n")
        return ln

    def exactly(self, n: int) -> bytes | None:
        while len(self.buf) < n:
            if not self.fill():
                return None
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def read_response(sock: socket.socket, timeout: float, tick: Callable[[], None] | None = None,
                  recorder: g.Recorder | None = None, what: str = "") -> Resp | None:
    """One HTTP/1.1 response (Content-Length, chunked, or up to EOF). None: the connection was closed (or
    reset) before a byte of a response. AssertionError: no complete response within `timeout` seconds.
    `tick` runs about every 50 ms while waiting (it may raise to give up)."""
    r = _Reader(sock, time.monotonic() + timeout, tick)
    try:
        while b"\r\n\r\n" not in r.buf:
            if not r.fill():
                if not r.buf:
                    return None
                raise AssertionError(f"{what}: connection closed inside a response head: {r.buf[:300]!r}")
        head, _, r.buf = r.buf.partition(b"\r\n\r\n")
        status_line, *hlines = head.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        assert len(parts) >= 2 and parts[0].startswith("HTTP/1.") and parts[1].isdigit(), \
            f"{what}: not an HTTP response: {head[:300]!r}"
        headers = {}
        for hl in hlines:
            k, _, v = hl.partition(":")
            headers[k.strip().lower()] = v.strip()
        status = int(parts[1])
        complete = True
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = b""
            while True:
                size_line = r.line()
                if size_line is None:
                    complete = False
                    break
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    r.line()
                    break
                data = r.exactly(size + 2)
                if data is None:
                    body += r.buf
                    complete = False
                    break
                body += data[:-2]
        elif "content-length" in headers:
            n = int(headers["content-length"])
            body = r.exactly(n)
            if body is None:
                body, complete = r.buf, False
        elif status in (204, 304) or 100 <= status < 200:
            body = b""
        else:
            while r.fill():
                pass
            body = r.buf
    except TimeoutError:
        raise AssertionError(f"{what}: no complete response within {timeout} s (got {r.total} bytes: "
                             f"{r.buf[:200]!r}{'...' if len(r.buf) > 200 else ''})") from None
    resp = Resp(status, headers, body, head, complete)
    if recorder is not None:
        recorder.add(g.Seen("raw-socket", "?", what, headers.get("x-request-id"), status, list(headers.items()),
                            bytearray(body)))
    return resp


def wait_closed(sock: socket.socket, timeout: float) -> tuple[float | None, bytes]:
    """Seconds until the peer closed the connection (EOF or reset), or None if it is still open after
    `timeout`; and whatever arrived meanwhile."""
    t0 = time.monotonic()
    got = b""
    while True:
        left = t0 + timeout - time.monotonic()
        if left <= 0:
            return None, got
        sock.settimeout(left)
        try:
            d = sock.recv(65536)
        except socket.timeout:
            return None, got
        except (ConnectionResetError, ConnectionAbortedError):
            d = b""
        if not d:
            return time.monotonic() - t0, got
        got += d


def send_quietly(sock: socket.socket, data: bytes) -> bool:
    """sendall; False if the gateway already closed the connection."""
    try:
        sock.sendall(data)
        return True
    except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
        return False


def upstream_chat_requests_since(mock: g.MockClient, t0: float) -> list[dict]:
    """Chat requests the mock received since `t0` (time.time()), whatever their body (even unparseable)."""
    return [r for r in mock.requests() if r.get("time", 0) >= t0 and r["path"] in g.UPSTREAM_PATH.values()]


def sse_events(body: bytes) -> list[tuple[str | None, str]]:
    return g.parse_sse(body)[0]


def json_or_none(data: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


# ================================================================================================
# h1: slowloris. Request line + headers must arrive within server.header_read_timeout_ms.


def test_h1_slowloris_connections_are_closed_after_header_read_timeout(start_gateway, recorder, tag):
    gw = start_gateway({"header_read_timeout_ms": 1000})
    head = request_bytes("POST", OA_PATH, {**OA_AUTH, "Content-Type": "application/json", "Content-Length": "100"})
    socks = [connect(gw) for _ in range(50)]
    still_open = dict(enumerate(socks))
    gone_after: dict[int, float] = {}
    normal_ok = None
    t0 = time.monotonic()
    pos = 0
    try:
        while still_open and time.monotonic() - t0 < 4.0:
            for i, s in list(still_open.items()):  # one more byte of the head on every open connection
                if not send_quietly(s, head[pos:pos + 1]):
                    gone_after[i] = time.monotonic() - t0
                    del still_open[i]
            pos += 1
            until = time.monotonic() + 0.3
            while still_open and time.monotonic() < until:
                ready, _, _ = select.select(list(still_open.values()), [], [], max(0.0, until - time.monotonic()))
                for s in ready:
                    i = socks.index(s)
                    try:
                        s.recv(65536)  # EOF, a reset or a response (a 408): the gateway gave up on it
                    except OSError:
                        pass
                    gone_after[i] = time.monotonic() - t0
                    del still_open[i]
            if normal_ok is None and time.monotonic() - t0 > 0.5:
                # meanwhile, a normal client on a new connection is served
                r = g.raw_request(gw.url, "POST", OA_PATH, chat_body("openai", "gpt-4o-mini", f"Hi {tag}"), OA_AUTH,
                                  recorder, timeout=5)
                normal_ok = (r.status, r.body[:300])
    finally:
        for s in socks:
            s.close()
    assert normal_ok is not None and normal_ok[0] == 200, f"a normal request during the slowloris failed: {normal_ok}"
    assert not still_open, (f"{len(still_open)} of 50 connections trickling their headers (1 byte / 0.3 s) were still "
                            f"open after {time.monotonic() - t0:.1f} s with server.header_read_timeout_ms: 1000")
    assert max(gone_after.values()) < 3.0, f"slow connections closed only after {max(gone_after.values()):.1f} s"


# ================================================================================================
# h2: idle keep-alive connections are closed after server.idle_timeout_ms; a stream in flight is not idle.


def test_h2_idle_keep_alive_connection_is_closed_after_idle_timeout(start_gateway, recorder, tag):
    gw = start_gateway({"idle_timeout_ms": 1000})
    s = connect(gw)
    try:
        body = json.dumps(chat_body("openai", "gpt-4o-mini", f"Hi {tag}")).encode()
        s.sendall(request_bytes("POST", OA_PATH, OA_AUTH, body))
        r = read_response(s, 5, recorder=recorder, what="first request")
        assert r is not None and r.status == 200, r
        assert answer_text("openai", r.json()) == f"echo: Hi {tag}"
        closed_after, got = wait_closed(s, 4.0)
    finally:
        s.close()
    assert closed_after is not None, "an idle keep-alive connection was still open 4 s after its request " \
                                     "(server.idle_timeout_ms: 1000)"
    assert closed_after < 3.0, f"idle connection closed only after {closed_after:.1f} s"
    assert got == b"", f"the gateway sent something on an idle connection: {got[:200]!r}"


def test_h2_idle_timeout_does_not_cut_a_stream_in_flight(start_gateway, tag):
    """mock-drip sends a delta every 0.2 s for 10 s: with idle_timeout_ms 1000 the stream keeps flowing."""
    gw = start_gateway({"idle_timeout_ms": 1000})
    s = connect(gw)
    got = b""
    eof = False
    t0 = time.monotonic()
    try:
        body = json.dumps(chat_body("openai", "openai/mock-drip", f"Hi {tag}", stream=True)).encode()
        s.sendall(request_bytes("POST", OA_PATH, OA_AUTH, body))
        last_delta_at = None
        while time.monotonic() - t0 < 2.6:
            s.settimeout(max(0.01, 2.6 - (time.monotonic() - t0)))
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                d = b""
            if not d:
                eof = True
                break
            if b"drip " in d:
                last_delta_at = time.monotonic() - t0
            got += d
    finally:
        s.close()
    assert got.startswith(b"HTTP/1.1 200"), got[:300]
    deltas = got.count(b"drip ")
    assert not eof, f"the stream was cut after {time.monotonic() - t0:.1f} s and {deltas} deltas (idle_timeout_ms 1000)"
    assert deltas >= 8 and last_delta_at is not None and last_delta_at > 2.0, \
        f"{deltas} deltas, the last at {last_delta_at} s: the stream must keep delivering for more than 2 s"


# ================================================================================================
# h3: server.max_connections: one more connection gets an immediate 503 JSON error and is closed.


def _hold_connection(gw: g.Gateway) -> socket.socket:
    """A keep-alive connection that completed one request (so it was certainly accepted)."""
    for _ in range(10):
        s = connect(gw)
        r = read_response(s, 5, what="held connection") if send_quietly(s, request_bytes("GET", "/health")) else None
        if r is not None and r.status == 200 and r.headers.get("connection", "").lower() != "close":
            return s
        s.close()
        time.sleep(0.2)  # a connection of the readiness probe may not be counted out yet
    raise AssertionError("could not open a connection below server.max_connections")


def test_h3_connections_over_max_connections_get_503(start_gateway, recorder, tag):
    gw = start_gateway({"max_connections": 20})
    time.sleep(0.3)
    held: list[socket.socket] = []
    try:
        for _ in range(20):
            held.append(_hold_connection(gw))
        extra = connect(gw)
        try:
            # The gateway may answer at once, without reading: wait a moment before sending the request.
            ready, _, _ = select.select([extra], [], [], 1.0)
            if not ready:
                send_quietly(extra, request_bytes("GET", "/health"))
            r = read_response(extra, 5, recorder=recorder, what="21st connection")
            assert r is not None, "the 21st connection was closed without a response (expected a 503 JSON error)"
            assert r.status == 503, f"21st connection with max_connections 20: {r.status} {r.body[:300]!r}"
            body = r.json()
            assert isinstance(body, dict) and isinstance(body.get("error"), dict) and body["error"].get("message"), body
            closed_after, _ = wait_closed(extra, 3.0)
            assert closed_after is not None, "the connection over the limit was not closed after its 503"
        finally:
            extra.close()
        # the 20 accepted connections still work
        held[0].sendall(request_bytes("GET", "/health"))
        r = read_response(held[0], 5, what="held connection after the cap")
        assert r is not None and r.status == 200, r
    finally:
        for s in held:
            s.close()
    # with the 20 closed, new connections are served again
    deadline = time.monotonic() + 5
    last = None
    while time.monotonic() < deadline:
        try:
            r = g.raw_request(gw.url, "POST", OA_PATH, chat_body("openai", "gpt-4o-mini", f"Hi {tag}"), OA_AUTH,
                              recorder, timeout=5)
            last = (r.status, r.body[:200])
            if r.status == 200:
                break
        except (OSError, AssertionError) as e:
            last = repr(e)
        time.sleep(0.2)
    assert isinstance(last, tuple) and last[0] == 200, f"requests still refused after the held connections closed: {last}"


# ================================================================================================
# h4: fd exhaustion (EMFILE on accept) must not spin a core.


def test_h4_fd_exhaustion_does_not_spin(start_gateway, recorder, tag):
    gw = start_gateway(rlimit_nofile=128)
    pid = gw.proc.pid
    conns: list[socket.socket] = []
    try:
        for _ in range(200):  # more than the gateway can hold open: the rest wait in the listen backlog
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", gw.port))
            conns.append(s)
        time.sleep(1.0)
        assert gw.alive(), f"the gateway died with its fds exhausted: {gw.log_text()[-2000:]}"
        c0, t0 = cpu_seconds(pid), time.monotonic()
        time.sleep(3.0)
        used, spent = cpu_seconds(pid) - c0, time.monotonic() - t0
        assert gw.alive(), f"the gateway died with its fds exhausted: {gw.log_text()[-2000:]}"
    finally:
        for s in conns:
            s.close()
    assert used < 0.5, (f"the gateway used {used:.2f} s of CPU in {spent:.1f} s while out of file descriptors "
                        f"(RLIMIT_NOFILE 128, 200 connections): a busy accept loop")
    deadline = time.monotonic() + 8
    last = None
    while time.monotonic() < deadline:
        try:
            r = g.raw_request(gw.url, "POST", OA_PATH, chat_body("openai", "gpt-4o-mini", f"Hi {tag}"), OA_AUTH,
                              recorder, timeout=3)
            last = (r.status, r.body[:200])
            if r.status == 200:
                break
        except (OSError, AssertionError) as e:
            last = repr(e)
        time.sleep(0.2)
    assert isinstance(last, tuple) and last[0] == 200, f"no normal request served after the connections closed: {last}"


# ================================================================================================
# h5: the proxy key is checked before the body is read; unauthenticated bodies are never buffered.


@CLIENTS
@pytest.mark.parametrize("key", ["no-key", "wrong-key"])
def test_h5_unauthenticated_request_is_refused_before_its_body(gateway, recorder, client, key):
    headers = {} if client == "openai" else {"anthropic-version": "2023-06-01"}
    if key == "wrong-key":
        headers["Authorization" if client == "openai" else "x-api-key"] = \
            ("Bearer " if client == "openai" else "") + "wrong-" + g.nonce()
    s = connect(gateway)
    try:
        t0 = time.monotonic()
        s.sendall(request_bytes("POST", path_of(client), headers, content_length=5_000_000))  # the head only
        r = read_response(s, 2.0, recorder=recorder, what=f"{client} request without a valid key")
        elapsed = time.monotonic() - t0
    finally:
        s.close()
    assert r is not None, "the connection was closed without a 401"
    assert_error(client, r.raw(), 401)
    assert elapsed < 2.0


def test_h5_unauthenticated_bodies_do_not_grow_memory(start_gateway):
    """40 connections without a key, each announcing 9 MB and sending all of it but the last byte."""
    gw = start_gateway({"max_body_bytes": 10485760})
    pid = gw.proc.pid
    r = g.raw_request(gw.url, "GET", "/health")
    assert r.status == 200
    base = rss_kb(pid)
    n, length = 40, 9_000_000
    head = request_bytes("POST", OA_PATH, {}, content_length=length)
    block = memoryview(b"x" * (256 * 1024))
    socks = [connect(gw) for _ in range(n)]
    left = {s: length - 1 for s in socks}
    peak = base
    t0 = time.monotonic()
    try:
        for s in socks:
            s.sendall(head)
            s.setblocking(False)
        while left and time.monotonic() - t0 < 10:
            _, writable, _ = select.select([], list(left), [], 0.05)
            for s in writable:
                try:
                    sent = s.send(block[:min(len(block), left[s])])
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:  # the gateway answered and closed: nothing more to send
                    del left[s]
                    continue
                left[s] -= sent
                if left[s] == 0:
                    del left[s]
            peak = max(peak, rss_kb(pid))
            if peak - base > 200 * 1024:
                break  # clearly failing: stop feeding it
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            peak = max(peak, rss_kb(pid))
            time.sleep(0.05)
    finally:
        for s in socks:
            s.close()
    assert (peak - base) < 60 * 1024, (
        f"the gateway's RSS grew by {(peak - base) / 1024:.0f} MB ({base // 1024} -> {peak // 1024} MB) while 40 "
        f"unauthenticated clients sent 9 MB bodies: bodies must not be read before the key is checked")


# ================================================================================================
# h6: a Content-Length over server.max_body_bytes gets 413 before the body is sent.


@CLIENTS
def test_h6_content_length_over_max_body_bytes_is_refused_before_the_body(gateway, recorder, client):
    s = connect(gateway)
    try:
        t0 = time.monotonic()
        s.sendall(request_bytes("POST", path_of(client), auth_of(client), content_length=5_000_000))  # limit: 200000
        r = read_response(s, 2.0, recorder=recorder, what=f"{client} request announcing 5 MB")
        elapsed = time.monotonic() - t0
    finally:
        s.close()
    assert r is not None, "the connection was closed without a 413"
    assert_error(client, r.raw(), 413)
    assert elapsed < 2.0


# ================================================================================================
# h7: server.body_read_timeout_ms: a body that stops half way gets a 408 in the client's format.


@CLIENTS
def test_h7_body_read_timeout_gets_408(start_gateway, recorder, mock, tag, client):
    gw = start_gateway({"body_read_timeout_ms": 1000})
    body = json.dumps(chat_body(client, "gpt-4o-mini" if client == "openai" else "claude-sonnet-4-5",
                                f"Hi {tag} " + "pad " * 200)).encode()
    since = time.time()
    s = connect(gw)
    try:
        s.sendall(request_bytes("POST", path_of(client), auth_of(client), body[:len(body) // 2],
                                content_length=len(body)))
        t0 = time.monotonic()
        r = read_response(s, 4.0, recorder=recorder, what=f"{client} request whose body stalls")
        elapsed = time.monotonic() - t0
    finally:
        s.close()
    assert r is not None, "the connection was closed without a 408"
    assert_error(client, r.raw(), 408)
    assert elapsed < 3.0, f"408 after {elapsed:.1f} s (body_read_timeout_ms 1000)"
    time.sleep(0.2)
    assert upstream_chat_requests_since(mock, since) == [], "a request whose body never arrived reached the upstream"


# ================================================================================================
# h8: truncated or badly framed bodies never reach an upstream.


def _complete_json(client: str, tag: str, size: int) -> bytes:
    """A complete request body (valid JSON on its own), padded with spaces to `size` bytes."""
    b = json.dumps(chat_body(client, "gpt-4o-mini" if client == "openai" else "claude-sonnet-4-5", tag,
                             **({"max_tokens": 10} if client == "anthropic" else {})), separators=(",", ":")).encode()
    assert len(b) <= size, (len(b), size)
    return b + b" " * (size - len(b))


@CLIENTS
def test_h8_truncated_body_is_not_forwarded(gateway, recorder, mock, tag, client):
    """Content-Length 240, 120 bytes sent (a complete JSON document: the gateway must not act on it), then EOF."""
    since = time.time()
    s = connect(gateway)
    try:
        s.sendall(request_bytes("POST", path_of(client), auth_of(client), _complete_json(client, tag, 120),
                                content_length=240))
        s.shutdown(socket.SHUT_WR)
        r = read_response(s, 5, recorder=recorder, what=f"{client} truncated body")
    finally:
        s.close()
    if r is not None:
        assert_error(client, r.raw(), 400)
    time.sleep(0.3)
    assert mock.with_nonce(tag) == [] and upstream_chat_requests_since(mock, since) == [], \
        "a body cut short of its Content-Length reached the upstream"


@CLIENTS
def test_h8_bad_chunked_framing_is_not_forwarded(gateway, recorder, mock, tag, client):
    """A first chunk carrying a complete JSON document, then a chunk-size line that is not hex."""
    since = time.time()
    doc = _complete_json(client, tag, 120)
    head = request_bytes("POST", path_of(client), {**auth_of(client), "Content-Type": "application/json",
                                                   "Transfer-Encoding": "chunked"})
    s = connect(gateway)
    try:
        s.sendall(head + b"%x\r\n%s\r\n" % (len(doc), doc) + b"zz\r\nxx\r\n0\r\n\r\n")
        r = read_response(s, 5, recorder=recorder, what=f"{client} bad chunked body")
    finally:
        s.close()
    if r is not None:
        assert_error(client, r.raw(), 400)
    time.sleep(0.3)
    assert mock.with_nonce(tag) == [] and upstream_chat_requests_since(mock, since) == [], \
        "a body with broken chunked framing reached the upstream"


# ================================================================================================
# h9: server.max_upstream_event_bytes: an upstream SSE line that never ends is cut with an error event.


ENDLESS = [("openai", "openai/mock-endless-line"), ("openai", "anthropic/mock-endless-line"),
           ("anthropic", "anthropic/mock-endless-line")]


@pytest.mark.parametrize("client,model", ENDLESS, ids=["openai-fast", "openai-translated", "anthropic-fast"])
def test_h9_endless_upstream_line_ends_the_stream_with_an_error(start_gateway, recorder, mock, tag, client, model):
    gw = start_gateway({"max_upstream_event_bytes": 1048576})
    pid = gw.proc.pid
    base = rss_kb(pid)
    peak = [base]
    rid = f"rid-{tag}"

    def watch() -> None:
        peak[0] = max(peak[0], rss_kb(pid))
        if peak[0] - base > 100 * 1024:
            raise AssertionError(f"the gateway's RSS grew by {(peak[0] - base) // 1024} MB while the upstream sent "
                                 f"one endless SSE line (max_upstream_event_bytes 1 MiB)")

    s = connect(gw)
    t0 = time.monotonic()
    try:
        body = json.dumps(chat_body(client, model, f"Hi {tag}", stream=True)).encode()
        s.sendall(request_bytes("POST", path_of(client), {**auth_of(client), "X-Request-ID": rid}, body))
        try:
            r = read_response(s, 8.0, tick=watch, recorder=recorder, what=f"{client} stream from {model}")
        except AssertionError:
            s.close()
            gw.proc.kill()  # stop it before it eats the machine
            raise
        elapsed = time.monotonic() - t0
    finally:
        s.close()
    assert r is not None, "the connection was closed without a response"
    assert r.status == 200 and r.headers.get("content-type", "").startswith("text/event-stream"), (r.status, r.body[:300])
    assert r.complete, "the stream must end properly (after its error event), not with a broken connection"
    events = sse_events(r.body)
    if client == "openai":
        datas = [d for _, d in events]
        errors = [i for i, d in enumerate(datas) if isinstance(json_or_none(d), dict) and "error" in json_or_none(d)]
        assert errors, f"no error event; last events: {[d[:200] for d in datas[-3:]]}"
        err = json_or_none(datas[errors[-1]])["error"]
        assert isinstance(err, dict) and err.get("message"), err
        assert "[DONE]" not in datas, "an OpenAI stream that failed must not end with [DONE]"
    else:
        names = [n for n, _ in events]
        assert "error" in names, f"no `event: error`; events: {names[-5:]}"
        err = json_or_none(events[names.index("error")][1])
        assert isinstance(err, dict) and err.get("type") == "error" and err["error"].get("message"), err
        assert "message_stop" not in names[names.index("error"):], "message_stop after the error event"
    assert elapsed < 6.0, f"the error event came after {elapsed:.1f} s"
    assert peak[0] - base < 100 * 1024
    assert gw.log_for(rid)["outcome"] in ("error", "upstream_incomplete")
    # and the gateway let go of the upstream
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not mock.one(tag).get("client_gone"):
        time.sleep(0.1)
    assert mock.one(tag).get("client_gone"), "the gateway kept reading the endless upstream line"


# ================================================================================================
# h10: the fast path checks what comes back (HTML instead of JSON, gzip), and such answers are failures.


def _html_log_ok(gw: g.Gateway, rid: str) -> None:
    log = gw.log_for(rid)
    assert log["outcome"] in ("error", "upstream_incomplete"), f"an HTML answer was logged as {log['outcome']!r}: {log}"


@CLIENTS
def test_h10_html_answer_is_a_502(fresh_gateway, recorder, mock, tag, client):
    rid = f"rid-{tag}"
    r = g.raw_request(fresh_gateway.url, "POST", path_of(client), chat_body(client, f"{client}/mock-html", f"Hi {tag}"),
                      {**auth_of(client), "X-Request-ID": rid}, recorder)
    assert b"<html" not in r.body.lower(), f"the upstream's HTML page reached the client: {r.body[:200]!r}"
    assert_error(client, r, 502)
    assert len(mock.with_nonce(tag)) == 1
    _html_log_ok(fresh_gateway, rid)


@CLIENTS
def test_h10_html_event_in_a_stream_is_an_error(fresh_gateway, recorder, mock, tag, client):
    """The first event's data is `<html>not json`: the client gets an error event (or, before any byte, a 5xx
    error in its format), never the page and never a normal end."""
    rid = f"rid-{tag}"
    r = g.raw_request(fresh_gateway.url, "POST", path_of(client),
                      chat_body(client, f"{client}/mock-html", f"Hi {tag}", stream=True),
                      {**auth_of(client), "X-Request-ID": rid}, recorder)
    assert b"<html" not in r.body.lower(), f"the upstream's non-JSON event reached the client: {r.body[:300]!r}"
    if r.status != 200:
        assert_error(client, r, tuple(range(500, 600)))
    else:
        events, clean = g.parse_sse(r.body)
        assert clean, f"the stream must end on an event boundary: {r.body[-200:]!r}"
        for name, data in events:
            assert data == "[DONE]" or isinstance(json_or_none(data), dict), f"non-JSON event forwarded: {name} {data[:200]!r}"
        if client == "openai":
            datas = [d for _, d in events]
            errors = [i for i, d in enumerate(datas) if "error" in (json_or_none(d) or {}) if d != "[DONE]"]
            assert errors, f"no error event: {datas[-3:]}"
            assert "[DONE]" not in datas, "a stream that failed must not end with [DONE]"
        else:
            names = [n for n, _ in events]
            assert "error" in names, f"no `event: error`: {names}"
            assert "message_stop" not in names[names.index("error"):], f"message_stop after the error event: {names}"
    assert len(mock.with_nonce(tag)) == 1
    _html_log_ok(fresh_gateway, rid)


def test_h10_html_answers_open_the_breaker(start_gateway, recorder, mock, tag):
    gw = start_gateway(extra="breaker:\n  consecutive_failures: 2\n  cooldown_ms: 60000\n")
    statuses = []
    for i in range(2):
        r = g.raw_request(gw.url, "POST", OA_PATH, chat_body("openai", "openai/mock-html", f"html {tag} {i}"), OA_AUTH,
                          recorder)
        statuses.append(r.status)
    time.sleep(0.5)  # breaker writes run beside the responses
    probe = f"probe {tag}"
    r = g.raw_request(gw.url, "POST", OA_PATH, chat_body("openai", "openai/gpt-4o-mini", probe), OA_AUTH, recorder)
    assert r.status == 503, (f"after two HTML answers from openai (statuses {statuses}), consecutive_failures 2 must "
                             f"open its breaker: got {r.status} {r.body[:200]!r}")
    assert g.assert_openai_error(r, 503).get("code") == "circuit_open"
    assert mock.with_nonce(probe) == [], "an open breaker must not call the upstream"


GZIP = [("openai", "openai"), ("anthropic", "anthropic"), ("openai", "anthropic"), ("anthropic", "openai")]


@pytest.mark.parametrize("client,upstream", GZIP, ids=["openai-fast", "anthropic-fast", "openai-from-anthropic",
                                                       "anthropic-from-openai"])
def test_h10_gzip_answer_is_decoded(fresh_gateway, recorder, mock, tag, client, upstream):
    r = g.raw_request(fresh_gateway.url, "POST", path_of(client), chat_body(client, f"{upstream}/mock-gzip", f"Hi {tag}"),
                      auth_of(client), recorder)
    assert r.status == 200, (r.status, r.headers, r.body[:200])
    assert r.headers.get("content-encoding") in (None, "identity"), \
        f"the client did not ask for gzip: {r.headers.get('content-encoding')}"
    assert answer_text(client, r.json()) == f"echo: Hi {tag}"
    assert mock.with_nonce(tag)[0]["path"] == g.UPSTREAM_PATH[upstream]
    if client == "openai":
        res = g.openai_chat(g.openai_client(fresh_gateway, recorder), stream=False, model=f"{upstream}/mock-gzip",
                            messages=[{"role": "user", "content": f"Again {tag}"}])
        assert res.text == f"echo: Again {tag}"
    else:
        res = g.anthropic_messages(g.anthropic_client(fresh_gateway, recorder), stream=False,
                                   model=f"{upstream}/mock-gzip", max_tokens=100,
                                   messages=[{"role": "user", "content": f"Again {tag}"}])
        assert res.text == f"echo: Again {tag}"


@pytest.mark.parametrize("client", ["openai", "anthropic"], ids=["openai-fast", "anthropic-from-openai"])
def test_h10_a_gzip_stream_is_decoded_as_it_arrives(fresh_gateway, recorder, mock, tag, client):
    """The upstream compresses its stream and pauses after the first text delta: that delta reaches the client
    before the pause ends (a decoder holding output until more input would deliver it only at the end)."""
    pause = 1.0  # mock_upstream.GZIP_DRIP_PAUSE
    first = None
    text = ""
    if client == "openai":
        stream = g.openai_client(fresh_gateway, recorder).chat.completions.create(
            model="openai/mock-gzip-drip", stream=True, messages=[{"role": "user", "content": f"Drip {tag}"}])
        for ch in stream:
            if ch.choices and ch.choices[0].delta.content:
                first = first or time.monotonic()
                text += ch.choices[0].delta.content
    else:
        with g.anthropic_client(fresh_gateway, recorder).messages.stream(
                model="openai/mock-gzip-drip", max_tokens=100,
                messages=[{"role": "user", "content": f"Drip {tag}"}]) as stream:
            for ev in stream:
                if ev.type == "content_block_delta" and ev.delta.type == "text_delta":
                    first = first or time.monotonic()
                    text += ev.delta.text
    end = time.monotonic()
    assert text == f"echo: Drip {tag}"
    assert first is not None and end - first >= pause * 0.7, \
        f"the first delta came {end - first if first else None:.3f} s before the end, the upstream paused {pause} s"
    assert mock.with_nonce(tag)[0]["path"] == g.UPSTREAM_PATH["openai"]


# ================================================================================================
# h11: a client that leaves before the first byte: outcome client_disconnected, status 499, attempt cancelled.


@CLIENTS
def test_h11_client_gone_before_first_byte(fresh_gateway, tag, client):
    rid = f"rid-{tag}"
    body = json.dumps(chat_body(client, "openai/mock-slow", f"Hi {tag}")).encode()  # the mock sleeps 5 s
    s = connect(fresh_gateway)
    try:
        s.sendall(request_bytes("POST", path_of(client), {**auth_of(client), "X-Request-ID": rid}, body))
        time.sleep(0.5)
    finally:
        s.close()
    log = fresh_gateway.log_for(rid, timeout=8)
    summary = json.dumps({k: log.get(k) for k in ("outcome", "status", "attempts")})
    assert log["outcome"] == "client_disconnected", f"a client gone before the first byte was logged as: {summary}"
    assert log["status"] == 499, summary
    atts = log["attempts"]
    assert len(atts) == 1 and atts[0]["provider"] == "openai" and atts[0]["error_class"] == "cancelled", summary


# ================================================================================================
# h12: amplification limits: server.max_messages, server.max_model_bytes, server.max_json_depth.


@pytest.fixture(scope="module")
def limited_gateway(gateway_factory, tmp_path_factory):
    cfg = write_config(tmp_path_factory.mktemp("hardening") / "limits.yaml", {"max_messages": 1000})
    try:
        gw = gateway_factory.start("hardening-limits", config=cfg)
    except RuntimeError as e:
        pytest.fail(f"gateway with max_messages did not start: {e}", pytrace=False)
    yield gw
    gw.stop()


def _messages(client: str, n: int, tag: str) -> list[dict]:
    if client == "openai":
        return [{"role": "user", "content": f"m{i} {tag}"} for i in range(n)]
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": f"m{i} {tag}"} for i in range(n)]


@CLIENTS
def test_h12_too_many_messages(limited_gateway, recorder, mock, tag, client):
    model = "gpt-4o-mini" if client == "openai" else "claude-sonnet-4-5"
    extra = {"max_tokens": 10} if client == "anthropic" else {}
    r = g.raw_request(limited_gateway.url, "POST", path_of(client),
                      {"model": model, "messages": _messages(client, 1001, tag), **extra}, auth_of(client), recorder)
    err = assert_error(client, r, 400)
    assert "max_messages" in err["message"], err
    assert mock.with_nonce(tag) == []
    ok = f"ok{tag}"
    r = g.raw_request(limited_gateway.url, "POST", path_of(client),
                      {"model": model, "messages": _messages(client, 1000, ok), **extra}, auth_of(client), recorder)
    assert r.status == 200, f"exactly max_messages (1000) must be accepted: {r.status} {r.body[:300]!r}"


@CLIENTS
def test_h12_long_model_name(limited_gateway, recorder, mock, tag, client):
    name = ("gpt-" + "abcdefghijklmnop" * 700)[:10_000]  # routable by the `gpt-*` glob
    rid = f"rid-{tag}"
    extra = {"max_tokens": 10} if client == "anthropic" else {}
    r = g.raw_request(limited_gateway.url, "POST", path_of(client),
                      {"model": name, "messages": [{"role": "user", "content": f"Hi {tag}"}], **extra},
                      {**auth_of(client), "X-Request-ID": rid}, recorder)
    windows = {name[j:j + 301] for j in range(20)}  # with period 16, every 301-char run of the name is one of these
    body = r.body.decode("latin-1")
    assert not any(w in body for w in windows), "the response echoes the (10,000-character) model name"
    assert_error(client, r, 400)
    assert mock.with_nonce(tag) == []
    limited_gateway.log_for(rid)  # the request is logged...
    for line in limited_gateway.log_text().splitlines():  # ...but no log line carries the name in full
        assert not any(w in line for w in windows), f"a log line carries over 300 characters of the model name: {line[:400]}"


def _deep_schema(levels: int) -> dict:
    s: dict = {"type": "string"}
    for _ in range(levels):
        s = {"type": "object", "properties": {"a": s}}
    return s


def _depth(v: Any) -> int:
    if isinstance(v, dict):
        return 1 + max((_depth(x) for x in v.values()), default=0)
    if isinstance(v, list):
        return 1 + max((_depth(x) for x in v), default=0)
    return 0


@CLIENTS
def test_h12_deep_json(limited_gateway, recorder, mock, tag, client):
    schema = _deep_schema(48)
    if client == "openai":
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"Hi {tag}"}],
                "tools": [{"type": "function", "function": {"name": "f", "parameters": schema}}]}
    else:
        body = {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": f"Hi {tag}"}],
                "tools": [{"name": "f", "input_schema": schema}]}
    assert 100 <= _depth(body) < 128, _depth(body)  # deeper than max_json_depth (64), within serde_json's own limit
    r = g.raw_request(limited_gateway.url, "POST", path_of(client), body, auth_of(client), recorder)
    err = assert_error(client, r, 400)
    assert "max_json_depth" in err["message"], err
    assert mock.with_nonce(tag) == []


# ================================================================================================
# h13: hyper's own error replies (bad request line, URI too long, headers too large) carry a JSON body.


def _raw_exchange(gw: g.Gateway, data: bytes, recorder: g.Recorder, what: str) -> Resp:
    s = connect(gw)
    try:
        s.setblocking(False)
        view = memoryview(data)
        deadline = time.monotonic() + 5
        while view and time.monotonic() < deadline:  # the gateway may answer and close before it has read it all
            _, w, _ = select.select([], [s], [], 0.1)
            if w:
                try:
                    view = view[s.send(view[:256 * 1024]):]
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    break
        s.setblocking(True)
        r = read_response(s, 5, recorder=recorder, what=what)
    finally:
        s.close()
    assert r is not None, f"{what}: the connection was closed without a response"
    return r


def _assert_json_error(r: Resp, statuses: tuple[int, ...], what: str) -> None:
    assert r.status in statuses, f"{what}: status {r.status}, expected one of {statuses}"
    assert r.body, f"{what}: {r.status} with an empty body (expected a JSON error)"
    body = r.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), dict) and body["error"].get("message"), \
        f"{what}: not a JSON error: {body}"
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers


def test_h13_garbage_request_line_gets_a_json_400(gateway, recorder):
    r = _raw_exchange(gateway, b"GARBAGE\r\n\r\n", recorder, "garbage request line")
    _assert_json_error(r, (400,), "garbage request line")


def test_h13_long_uri_gets_a_json_error(gateway, recorder):
    r = _raw_exchange(gateway, request_bytes("GET", "/v1/models/" + "a" * 70_000, OA_AUTH), recorder, "70 KB URI")
    _assert_json_error(r, (414, 400, 431), "70 KB URI")


@pytest.mark.parametrize("shape", ["200-headers", "500KB-header"])
def test_h13_oversized_headers_get_a_json_431(gateway, recorder, shape):
    if shape == "200-headers":
        headers = {f"X-Filler-{i}": "x" for i in range(200)}
    else:
        headers = {"X-Filler": "x" * 500_000}
    r = _raw_exchange(gateway, request_bytes("GET", "/health", headers), recorder, shape)
    _assert_json_error(r, (431,), shape)


# ================================================================================================
# h14: tool schemas that are not JSON objects are refused (not silently replaced).


def test_h14_openai_tool_parameters_not_an_object(gateway, recorder, mock, tag):
    body = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": f"Hi {tag}"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": "not an object"}}]}
    r = g.raw_request(gateway.url, "POST", OA_PATH, body, OA_AUTH, recorder)
    g.assert_openai_error(r, 400)
    assert mock.with_nonce(tag) == [], "the invalid schema was sent upstream (the 400 came from the upstream)"
    with pytest.raises(openai.BadRequestError):
        g.openai_client(gateway, recorder).chat.completions.create(**body)


def test_h14_anthropic_input_schema_not_an_object(gateway, recorder, mock, tag):
    body = {"model": "gpt-4o-mini", "max_tokens": 10, "messages": [{"role": "user", "content": f"Hi {tag}"}],
            "tools": [{"name": "f", "input_schema": "x"}]}
    r = g.raw_request(gateway.url, "POST", AN_PATH, body, AN_AUTH, recorder)
    g.assert_anthropic_error(r, 400)
    assert mock.with_nonce(tag) == [], "the invalid schema was sent upstream (the 400 came from the upstream)"


# ================================================================================================
# h15: /health tells anonymous callers only that the gateway is up; the provider list needs the key.


def test_h15_health_without_key_lists_no_providers(gateway, recorder):
    r = g.raw_request(gateway.url, "GET", "/health", recorder=recorder)
    assert r.status == 200
    body = r.json()
    assert body.get("status") == "ok", body
    assert "providers" not in body, f"/health without a key reveals the providers: {body}"
    for leak in (b"NOKEY_API_KEY", b"anthropic", b"groq"):
        assert leak not in r.body, f"/health without a key mentions {leak!r}: {body}"


@pytest.mark.parametrize("header", ["authorization", "x-api-key"])
def test_h15_health_with_key_lists_providers(gateway, recorder, header):
    hdrs = OA_AUTH if header == "authorization" else {"x-api-key": g.PROXY_KEY}
    r = g.raw_request(gateway.url, "GET", "/health", headers=hdrs, recorder=recorder)
    assert r.status == 200
    body = r.json()
    assert body.get("status") == "ok", body
    providers = body.get("providers")
    assert isinstance(providers, dict), body
    for p in ("openai", "anthropic", "groq", "broken"):
        assert providers.get(p, {}).get("configured") is True, f"{p}: {providers.get(p)}"
    assert providers.get("nokey") == {"configured": False, "format": "openai", "missing": "NOKEY_API_KEY"}, providers
