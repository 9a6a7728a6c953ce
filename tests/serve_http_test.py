"""The HTTP layer of `brisk serve` under slow, half-closed, idle and oversized clients (issue 18,
sections 3 and 5): raw sockets, python3 standard library only, on the shared sotu-llama."""
import gzip
import json
import socket
import threading
import time
import unittest
import urllib.request

from brisk_cli import Server, model_dir

LLAMA = model_dir("sotu-llama")


def connect(server):
    return socket.create_connection(("127.0.0.1", server.port), timeout=30)


def request_bytes(path, body=None, headers=None, method=None):
    headers = dict(headers or {})
    lines = [f"{method or ('POST' if body is not None else 'GET')} {path} HTTP/1.1", "Host: x"]
    if body is not None:
        headers.setdefault("Content-Length", str(len(body)))
        headers.setdefault("Content-Type", "application/json")
    lines += [f"{k}: {v}" for k, v in headers.items()]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return head + (body if isinstance(body, bytes) else (body or "").encode())


def read_all(sock):
    chunks = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def get(server, path, timeout=30):
    with urllib.request.urlopen(server.url + path, timeout=timeout) as r:
        return r.status, r.read()


def post_json(server, body, timeout=60):
    req = urllib.request.Request(server.url + "/v1/completions", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def metric(server, name):
    _, text = get(server, "/metrics")
    for line in text.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


class Transport(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server("-m", LLAMA, "-t", "2", "--head-timeout", "1", "--max-body", "100000",
                            "--api-key", "k", "--max-batch", "8")
        cls.auth = {"Authorization": "Bearer k"}

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def completion(self, body, timeout=60):
        req = urllib.request.Request(self.server.url + "/v1/completions", json.dumps(body).encode(),
                                     {"Content-Type": "application/json", **self.auth})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())

    def test_slowloris_is_closed_and_does_not_delay_others(self):
        # 200 connections trickle a header line every 0.3 s; the head must be whole within 1 s.
        socks = [connect(self.server) for _ in range(200)]
        for s in socks:
            s.sendall(b"POST /v1/completions HTTP/1.1\r\n")
        stop = threading.Event()

        def trickle():
            while not stop.is_set():
                for s in socks:
                    try:
                        s.sendall(b"X-Slow: 1\r\n")
                    except OSError:
                        pass
                time.sleep(0.3)

        t = threading.Thread(target=trickle)
        t.start()
        try:
            started = time.monotonic()
            self.assertEqual(get(self.server, "/health")[0], 200)
            out = self.completion({"prompt": "The Congress", "max_tokens": 4, "temperature": 0})
            self.assertEqual(out["usage"]["completion_tokens"], 4)
            self.assertLess(time.monotonic() - started, 5)
            time.sleep(1.5)
        finally:
            stop.set()
            t.join()
        closed = 0
        for s in socks:
            s.settimeout(5)
            try:
                data = s.recv(4096)
                closed += data == b""  # the server closed it (a reply would be data)
            except OSError:
                closed += 1
            s.close()
        self.assertEqual(closed, len(socks), "every trickling connection was closed by the head timeout")

    def test_health_is_fast_with_200_idle_keep_alive_connections(self):
        idle = [connect(self.server) for _ in range(200)]
        for s in idle:  # each served one request and stays open, idle
            s.sendall(request_bytes("/health"))
        for s in idle:
            self.assertIn(b"200 OK", s.recv(4096))
        times = []
        for _ in range(20):
            started = time.monotonic()
            self.assertEqual(get(self.server, "/health")[0], 200)
            times.append(time.monotonic() - started)
        times.sort()
        self.assertLess(times[len(times) // 2], 0.1, times)
        self.assertGreaterEqual(metric(self.server, "brisk_http_connections"), 200)
        for s in idle:
            s.close()

    def test_a_burst_of_500_connections_is_not_reset(self):
        # The listen backlog (4096) holds a burst that arrives faster than accept() runs.
        results = []

        def one():
            try:
                with connect(self.server) as s:
                    s.sendall(request_bytes("/health", headers={"Connection": "close"}))
                    results.append(read_all(s).startswith(b"HTTP/1.1 200"))
            except OSError as e:
                results.append(repr(e))

        threads = [threading.Thread(target=one) for _ in range(500)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(results.count(True), 500, [r for r in results if r is not True][:5])

    def test_unauthenticated_body_is_refused_unread(self):
        s = connect(self.server)
        s.sendall(request_bytes("/v1/completions", None, {"Content-Length": "90000"}, method="POST"))
        reply = read_all(s)  # answered (and closed) without sending a byte of the body
        self.assertIn(b"401 Unauthorized", reply)
        s.close()

    def test_bodies_are_bounded(self):
        # Declared too large: refused before reading.
        s = connect(self.server)
        s.sendall(request_bytes("/v1/completions", None, {"Content-Length": "200000", **self.auth}, method="POST"))
        self.assertIn(b"413", read_all(s).split(b"\r\n")[0])
        s.close()
        # Chunked past the bound: refused as it arrives.
        s = connect(self.server)
        s.sendall(request_bytes("/v1/completions", None, {"Transfer-Encoding": "chunked", **self.auth}, method="POST"))
        try:
            for _ in range(30):
                s.sendall(b"2000\r\n" + b"a" * 0x2000 + b"\r\n")
        except OSError:
            pass
        reply = read_all(s)
        self.assertIn(b"413", reply.split(b"\r\n")[0], reply)
        s.close()
        # A gzip bomb: 3 MB of spaces in ~3 KB.
        bomb = gzip.compress(b" " * 3_000_000)
        self.assertLess(len(bomb), 100000)
        s = connect(self.server)
        s.sendall(request_bytes("/v1/completions", bomb, {"Content-Encoding": "gzip", **self.auth}))
        reply = s.recv(65536)  # refused after inflating; the connection stays open
        self.assertIn(b"413", reply.split(b"\r\n")[0])
        self.assertIn(b"inflates to more than 100000 bytes", reply)
        s.close()
        # A gzip body inside the bound works.
        body = gzip.compress(json.dumps({"prompt": "The Congress", "max_tokens": 3, "temperature": 0}).encode())
        s = connect(self.server)
        s.sendall(request_bytes("/v1/completions", body, {"Content-Encoding": "gzip", **self.auth}))
        self.assertIn(b"200 OK", s.recv(65536))
        s.close()

    def test_half_closed_client_gets_its_reply(self):
        body = json.dumps({"prompt": "The Congress", "max_tokens": 5, "temperature": 0}).encode()
        expected = self.completion({"prompt": "The Congress", "max_tokens": 5, "temperature": 0})
        s = connect(self.server)
        s.sendall(request_bytes("/v1/completions", body, {**self.auth, "Connection": "close"}))
        s.shutdown(socket.SHUT_WR)
        reply = read_all(s)
        s.close()
        final = reply[reply.index(b"HTTP/1.1 200"):]  # after any interim 102 Processing
        payload = json.loads(final.split(b"\r\n\r\n", 1)[1])
        self.assertEqual(payload["choices"][0]["text"], expected["choices"][0]["text"])
        # Streaming too.
        body = json.dumps({"prompt": "The Congress", "max_tokens": 5, "temperature": 0, "stream": True}).encode()
        s = connect(self.server)
        s.sendall(request_bytes("/v1/completions", body, {**self.auth, "Connection": "close"}))
        s.shutdown(socket.SHUT_WR)
        reply = read_all(s)
        s.close()
        self.assertIn(b"data: [DONE]", reply)

    def test_a_closed_non_streaming_client_is_cancelled_at_once(self):
        before = metric(self.server, 'brisk_requests_total{endpoint="completions",status="499"}')
        body = json.dumps({"prompt": "The", "max_tokens": 1000, "n": 8, "ignore_eos": True, "temperature": 0}).encode()
        s = connect(self.server)
        s.sendall(request_bytes("/v1/completions", body, self.auth))
        time.sleep(0.3)
        s.close()
        closed = time.monotonic()
        while time.monotonic() - closed < 5:
            if metric(self.server, 'brisk_requests_total{endpoint="completions",status="499"}') > before:
                break
            time.sleep(0.02)
        self.assertLess(time.monotonic() - closed, 0.5, "the request was cancelled within 0.5 s")
        while metric(self.server, "brisk_running_batch") > 0 and time.monotonic() - closed < 5:
            time.sleep(0.02)
        self.assertEqual(metric(self.server, "brisk_running_batch"), 0)

    def test_request_log_has_one_line_per_request(self):
        out = self.completion({"prompt": "The Congress", "max_tokens": 3, "temperature": 0})
        time.sleep(0.2)
        lines = [l for l in self.server.log().splitlines() if "POST /v1/completions 200" in l]
        self.assertTrue(lines, self.server.log()[-2000:])
        self.assertRegex(lines[-1], r"request \d+ POST /v1/completions 200 [0-9.]+ s prompt=2 completion=3 ttft=[0-9.]+ s")
        self.assertEqual(out["usage"]["completion_tokens"], 3)


class Shutdown(unittest.TestCase):
    def test_sigterm_closes_slow_and_idle_connections_at_once(self):
        server = Server("-m", LLAMA, "-t", "2")
        socks = [connect(server) for _ in range(100)]
        for i, s in enumerate(socks):  # half idle after a request, half in the middle of a head
            s.sendall(request_bytes("/health") if i % 2 else b"GET /health HTTP/1.1\r\nX-Slow: 1\r\n")
        time.sleep(0.3)
        started = time.monotonic()
        self.assertEqual(server.stop(), 0)
        self.assertLess(time.monotonic() - started, 5)
        for s in socks:
            s.close()


if __name__ == "__main__":
    unittest.main()
