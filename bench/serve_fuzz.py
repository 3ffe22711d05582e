#!/usr/bin/python3
"""serve_fuzz: malformed requests against a running `lmlab serve`.

Sends N requests built to be wrong in the ways clients and attackers are wrong: bad JSON, wrong
types, huge numbers, huge and truncated bodies, bad UTF-8, unknown paths and methods, broken HTTP,
slow clients that stop mid-request. A request is handled cleanly when the server answers it with a
4xx status and a JSON error body, or closes the connection without answering (an HTTP request it
cannot read), and never with a 5xx, a hang past the timeout, or a crash. After all of them the
server must still answer /health and a valid completion.

Usage: serve_fuzz.py HOST PORT [N] [SEED]     prints  RESULT serve_fuzz <fraction handled cleanly>
"""
import json
import random
import socket
import sys
import time

HOST, PORT = sys.argv[1], int(sys.argv[2])
N = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
rng = random.Random(int(sys.argv[4]) if len(sys.argv) > 4 else 1)
TIMEOUT = 10.0

GOOD = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "temperature": 0}


def http(method, path, body=b"", headers=None, raw=None, slow=False, half_close=False):
    """Returns (status or None if closed without an answer, body bytes); raises on timeout."""
    s = socket.create_connection((HOST, PORT), timeout=TIMEOUT)
    try:
        if raw is None:
            h = {"Host": f"{HOST}:{PORT}", "Content-Type": "application/json", "Content-Length": str(len(body)),
                 "Connection": "close"}
            h.update(headers or {})
            raw = f"{method} {path} HTTP/1.1\r\n".encode() + b"".join(
                f"{k}: {v}\r\n".encode("latin-1", "replace") for k, v in h.items()) + b"\r\n" + body
        if slow:  # a client that sends part of the request, then goes away
            s.sendall(raw[: max(1, len(raw) // 2)])
            time.sleep(0.05)
            s.close()
            return None, b""
        s.sendall(raw)
        if half_close:  # broken HTTP: the server sees the end of it instead of waiting for more
            s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        if not data:
            return None, b""
        status = int(data.split(b" ", 2)[1])
        return status, data.split(b"\r\n\r\n", 1)[-1]
    finally:
        s.close()


def mutate_json():
    b = json.loads(json.dumps(GOOD))
    k = rng.randrange(14)
    if k == 0:
        b["messages"] = rng.choice([1, "x", [], [1], [{}], [{"role": 1}], [{"role": "user", "content": {"a": 1}}]])
    elif k == 1:
        b["max_tokens"] = rng.choice([-1, 0, 10**30, 1e308, "5", [], 2**63])
    elif k == 2:
        b["temperature"] = rng.choice([-1, 3, "hot", 1e308, {}])
    elif k == 3:
        b["top_p"] = rng.choice([-0.5, 2, "x", []])
    elif k == 4:
        b["n"] = rng.choice([0, 17, 10**12, -3, "2"])
    elif k == 5:
        b["stop"] = rng.choice([1, [1, 2], ["a"] * 9, {"x": 1}])
    elif k == 6:
        b["seed"] = rng.choice(["s", 1.5, 10**40, []])
    elif k == 7:
        b["stream"] = rng.choice(["yes", 1, [], {}])
    elif k == 8:
        b["tools"] = rng.choice([1, [1], [{"type": "x"}], "t", [{"type": "function", "function": {}}]])
    elif k == 9:
        b["messages"][0]["content"] = "x" * rng.choice([10**5, 10**6])
    elif k == 10:
        b["response_format"] = rng.choice([1, {"type": "json_object"}, {"type": 3}])
    elif k == 11:
        b["logprobs"] = rng.choice(["y", 3]); b["top_logprobs"] = rng.choice([-1, 100, "x"])
    elif k == 12:
        del b["messages"]
    else:
        b = rng.choice([[], 1, "s", None, [GOOD]])  # (not an object)
    return json.dumps(b).encode()


def case(i):
    k = i % 12
    if k == 0:
        return dict(method="POST", path="/v1/chat/completions", body=mutate_json())
    if k == 1:  # broken JSON: truncated, garbage, bad UTF-8
        good = json.dumps(GOOD).encode()
        return dict(method="POST", path="/v1/chat/completions",
                    body=rng.choice([good[: rng.randrange(1, len(good))], bytes(rng.randrange(256) for _ in range(64)),
                                     b'{"messages": [{"role": "user", "content": "\xff\xfe\xc3"}]}', b"", b"{" * 5000]))
    if k == 2:  # Content-Length larger than the body (the client stops)
        return dict(method="POST", path="/v1/chat/completions", body=b'{"messages": [',
                    headers={"Content-Length": "100000"}, slow=True)
    if k == 3:  # huge body
        return dict(method="POST", path="/v1/chat/completions", body=b'{"x": "' + b"a" * (8 << 20) + b'"}')
    if k == 4:
        return dict(method=rng.choice(["GET", "PUT", "DELETE", "PATCH"]), path="/v1/chat/completions", body=b"")
    if k == 5:
        return dict(method="GET", path=rng.choice(["/nope", "/v1/../etc/passwd", "/" + "a" * 10000, "/v1/models/x"]),
                    body=b"")
    if k == 6:  # broken HTTP
        return dict(method="", path="", raw=rng.choice([b"GARBAGE\r\n\r\n", b"POST /v1/chat/completions HTTP/9.9\r\n\r\n",
                                                        b"GET /nope HTTP/1.1\r\n" + b"X: y\r\n" * 20000 + b"\r\n",
                                                        bytes(rng.randrange(256) for _ in range(300))]))
    if k == 7:  # slow client that sends half a valid request and leaves
        return dict(method="POST", path="/v1/chat/completions", body=json.dumps(GOOD).encode(), slow=True)
    if k == 8:
        return dict(method="POST", path="/v1/completions", body=json.dumps(
            rng.choice([{"prompt": 1}, {"prompt": ["a"]}, {"prompt": "a", "max_tokens": -2}, {"prompt": "a", "logprobs": 3}, {}])).encode())
    if k == 9:
        return dict(method="POST", path=rng.choice(["/tokenize", "/detokenize"]), body=json.dumps(
            rng.choice([{"content": 1}, {"tokens": [-1]}, {"tokens": [10**12]}, {"tokens": "x"}, {}, []])).encode())
    if k == 10:  # a bad chunked body
        return dict(method="POST", path="/v1/chat/completions", body=b"zz\r\nabc\r\n0\r\n\r\n",
                    headers={"Transfer-Encoding": "chunked", "Content-Length": "0"})
    return dict(method="POST", path="/v1/chat/completions", body=mutate_json(),
                headers={"Authorization": "Bearer " + "k" * rng.randrange(1, 5000)})


clean = 0
failures = {}
for i in range(N):
    c = case(i)
    try:
        status, body = http(c["method"], c["path"], c.get("body", b""), c.get("headers"), c.get("raw"), c.get("slow", False),
                            half_close=c.get("raw") is not None)
        ok = status is None or (400 <= status < 500 and (not body or body.lstrip().startswith(b"{")))
        if status is not None and status < 400:
            ok = False  # a malformed request answered as if it were fine
    except (socket.timeout, TimeoutError):
        ok, status = False, "timeout"
    except OSError as e:
        ok, status = False, f"error {e}"
    if ok:
        clean += 1
    else:
        failures.setdefault(str(status) + " case " + str(i % 12), 0)
        failures[str(status) + " case " + str(i % 12)] += 1

alive = False
try:
    h, _ = http("GET", "/health")
    g, body = http("POST", "/v1/chat/completions", json.dumps(GOOD).encode())
    alive = h == 200 and g == 200 and b"chat.completion" in body
except OSError:
    pass
for k, v in sorted(failures.items()):
    print(f"# serve_fuzz not clean: {v} x {k}")
print(f"# serve_fuzz: {clean}/{N} handled cleanly; afterwards /health and a valid completion: {'ok' if alive else 'FAILED'}")
print(f"RESULT serve_fuzz {clean / N if alive else 0.0:.4f}")
