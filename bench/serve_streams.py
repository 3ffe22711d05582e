#!/usr/bin/python3
"""serve_64_streams: concurrent streaming clients against a running `lmlab serve`.

First one client alone streams chat completions for SECONDS/4 (the single-stream rate), then
CLIENTS clients stream at once for SECONDS, each starting its next request as soon as one ends.
Counts generated tokens from the responses' usage (stream_options.include_usage), errors (any
non-200, a broken stream, a missing [DONE]), time to first token and the gaps between chunks.

Usage: serve_streams.py HOST PORT [CLIENTS] [SECONDS] [MAX_TOKENS]
Prints RESULT serve_streams.aggregate <tokens/s>, RESULT serve_streams.single <tokens/s>,
RESULT serve_streams.errors <n> and # lines with p50/p99 time to first token and inter-chunk gap.
"""
import http.client
import json
import sys
import threading
import time

HOST, PORT = sys.argv[1], int(sys.argv[2])
CLIENTS = int(sys.argv[3]) if len(sys.argv) > 3 else 64
SECONDS = float(sys.argv[4]) if len(sys.argv) > 4 else 60.0
MAX_TOKENS = int(sys.argv[5]) if len(sys.argv) > 5 else 64
PROMPTS = ["the jury said", "in the city of", "the election was", "he told the court", "the state of the union"]


def one_request(i, stats, lock):
    body = json.dumps({"messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}], "max_tokens": MAX_TOKENS,
                       "temperature": 1.0, "seed": i, "stream": True, "stream_options": {"include_usage": True}})
    t0 = time.perf_counter()
    first, last, gaps, tokens, done = None, None, [], 0, False
    try:
        c = http.client.HTTPConnection(HOST, PORT, timeout=120)
        c.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        r = c.getresponse()
        if r.status != 200:
            raise RuntimeError(f"status {r.status}")
        buf = b""
        while True:
            chunk = r.read1(65536) if hasattr(r, "read1") else r.read(1024)
            if not chunk:
                break
            buf += chunk
            while b"\n\n" in buf:
                ev, buf = buf.split(b"\n\n", 1)
                if not ev.startswith(b"data: "):
                    continue
                data = ev[6:]
                if data == b"[DONE]":
                    done = True
                    continue
                j = json.loads(data)
                if j.get("usage"):
                    tokens = j["usage"]["completion_tokens"]
                if j.get("choices") and j["choices"][0].get("delta", {}).get("content"):
                    now = time.perf_counter()
                    if first is None:
                        first = now - t0
                    elif last is not None:
                        gaps.append(now - last)
                    last = now
        c.close()
        ok = done
    except Exception:
        ok = False
    with lock:
        if ok:
            stats["tokens"] += tokens
            if first is not None:
                stats["ttft"].append(first)
            stats["gaps"].extend(gaps)
        else:
            stats["errors"] += 1


def run(clients, seconds):
    stats = {"tokens": 0, "errors": 0, "ttft": [], "gaps": []}
    lock = threading.Lock()
    end = time.perf_counter() + seconds

    def worker(w):
        i = w
        while time.perf_counter() < end:
            one_request(i, stats, lock)
            i += clients

    t0 = time.perf_counter()
    ts = [threading.Thread(target=worker, args=(w,)) for w in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return stats, time.perf_counter() - t0


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


single, s_el = run(1, SECONDS / 4)
multi, m_el = run(CLIENTS, SECONDS)
print(f"# serve_streams: 1 client {s_el:.0f} s: {single['tokens']} tokens, {single['errors']} errors; "
      f"{CLIENTS} clients {m_el:.0f} s: {multi['tokens']} tokens, {multi['errors']} errors")
print(f"# serve_streams: time to first token p50 {pct(multi['ttft'], 50) * 1e3:.0f} ms, p99 {pct(multi['ttft'], 99) * 1e3:.0f} ms; "
      f"inter-chunk gap p50 {pct(multi['gaps'], 50) * 1e3:.1f} ms, p99 {pct(multi['gaps'], 99) * 1e3:.1f} ms")
print(f"RESULT serve_streams.single {single['tokens'] / s_el:.2f}")
print(f"RESULT serve_streams.aggregate {multi['tokens'] / m_el:.2f}")
print(f"RESULT serve_streams.errors {single['errors'] + multi['errors']}")
