"""The peer of examples/kvservice.lang: the same service on Python's http.server with
ThreadingHTTPServer (one thread per connection, HTTP/1.1 keep-alive), for CPython and PyPy3.

    python3 benches/serve/kvservice.py [PORT]     (prints "listening on http://127.0.0.1:N")
"""

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

store = {}
counters = {}
lock = threading.Lock()  # the .lang service's transactions: one lock around shared data


def count_primes(n):
    c = 0
    for k in range(2, n):
        i = 2
        prime = True
        while i * i <= k:
            if k % i == 0:
                prime = False
                break
            i += 1
        if prime:
            c += 1
    return c


def handle(method, path, query, body):
    key = query.get("k", "")
    if path == "/ping":
        return 200, "pong\n"
    if path == "/primes":
        n = int(query.get("n", "20000"))
        if n > 10_000_000:
            return 400, "n too large\n"
        return 200, str(count_primes(n)) + "\n"
    with lock:
        if path == "/get":
            if key in store:
                return 200, store[key]
            return 404, "no key " + key + "\n"
        if path == "/set":
            store[key] = body if method == "POST" else query.get("v", "")
            return 200, "ok\n"
        if path == "/del":
            if key in store:
                del store[key]
                return 200, "deleted\n"
            return 404, "no key " + key + "\n"
        if path == "/incr":
            counters[key] = counters.get(key, 0) + 1
            return 200, str(counters[key]) + "\n"
        if path == "/keys":
            return 200, "".join(k + "\n" for k in store)
        if path == "/stats":
            return 200, "keys %d, counters %d\n" % (len(store), len(counters))
    if path == "/shutdown":
        threading.Thread(target=server.shutdown).start()
        return 200, "bye\n"
    return 404, "no route " + path + "\n"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the stmjit server
    # Headers and body go out in two writes: without TCP_NODELAY each answer waits ~40 ms
    # for the client's delayed ACK (Nagle).
    disable_nagle_algorithm = True

    def answer(self, method):
        url = urlsplit(self.path)
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode("utf-8") if n else ""
        status, text = handle(method, url.path, dict(parse_qsl(url.query)), body)
        data = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.answer("GET")

    def do_POST(self):
        self.answer("POST")

    def log_message(self, *a):
        pass


ThreadingHTTPServer.daemon_threads = True
server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0), Handler)
print("listening on http://127.0.0.1:%d" % server.server_address[1], flush=True)
server.serve_forever()
print("stopped")
