#!/usr/bin/python3
"""serve_64_streams: concurrent streaming clients against a running `lmlab serve`.

First one client alone streams chat completions for SECONDS/4 (the single-stream rate), then
CLIENTS clients stream at once for SECONDS, each starting its next request as soon as one ends.
Counts generated tokens from the responses' usage (stream_options.include_usage), errors (any
non-200, a broken stream, a missing [DONE]), time to first token and the gaps between chunks.

Usage: serve_streams.py HOST PORT [CLIENTS] [SECONDS] [MAX_TOKENS] [--single-seconds S] [--api chat|completions]
                        [--name NAME]
Prints RESULT NAME.aggregate <tokens/s>, RESULT NAME.single <tokens/s> (unless --single-seconds 0),
RESULT NAME.errors <n> and # lines with p50/p99 time to first token and inter-chunk gap (NAME
defaults to serve_streams). --api completions sends the prompts raw to /v1/completions (no chat
template: any OpenAI-compatible server, llama.cpp's llama-server included, gets the same tokens).
"""
import argparse
import http.client
import json
import threading
import time

ap = argparse.ArgumentParser()
ap.add_argument("host")
ap.add_argument("port", type=int)
ap.add_argument("clients", type=int, nargs="?", default=64)
ap.add_argument("seconds", type=float, nargs="?", default=60.0)
ap.add_argument("max_tokens", type=int, nargs="?", default=64)
ap.add_argument("--single-seconds", type=float, default=None, help="the single-client run (default seconds / 4; 0 skips it)")
ap.add_argument("--api", choices=["chat", "completions"], default="chat")
ap.add_argument("--name", default="serve_streams")
args = ap.parse_args()
HOST, PORT, CLIENTS, SECONDS, MAX_TOKENS = args.host, args.port, args.clients, args.seconds, args.max_tokens
SINGLE = SECONDS / 4 if args.single_seconds is None else args.single_seconds
PROMPTS = ["the jury said", "in the city of", "the election was", "he told the court", "the state of the union"]


def request_body(i):
    common = {"max_tokens": MAX_TOKENS, "temperature": 1.0, "seed": i, "stream": True,
              "stream_options": {"include_usage": True}}
    if args.api == "chat":
        return "/v1/chat/completions", dict(common, messages=[{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}])
    return "/v1/completions", dict(common, prompt=PROMPTS[i % len(PROMPTS)])


def chunk_text(j):
    ch = j.get("choices") or [{}]
    return ch[0].get("delta", {}).get("content") if args.api == "chat" else ch[0].get("text")


def one_request(i, stats, lock):
    path, body = request_body(i)
    body = json.dumps(body)
    t0 = time.perf_counter()
    first, last, gaps, tokens, done = None, None, [], 0, False
    try:
        c = http.client.HTTPConnection(HOST, PORT, timeout=120)
        c.request("POST", path, body, {"Content-Type": "application/json"})
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
                if j.get("choices") and chunk_text(j):
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


N = args.name
single, s_el = run(1, SINGLE) if SINGLE > 0 else ({"tokens": 0, "errors": 0}, 0.0)
multi, m_el = run(CLIENTS, SECONDS)
if SINGLE > 0:
    print(f"# {N}: 1 client {s_el:.0f} s: {single['tokens']} tokens, {single['errors']} errors")
print(f"# {N}: {CLIENTS} clients {m_el:.0f} s: {multi['tokens']} tokens, {multi['errors']} errors")
print(f"# {N}: time to first token p50 {pct(multi['ttft'], 50) * 1e3:.0f} ms, p99 {pct(multi['ttft'], 99) * 1e3:.0f} ms; "
      f"inter-chunk gap p50 {pct(multi['gaps'], 50) * 1e3:.1f} ms, p99 {pct(multi['gaps'], 99) * 1e3:.1f} ms")
if SINGLE > 0:
    print(f"RESULT {N}.single {single['tokens'] / s_el:.2f}")
print(f"RESULT {N}.aggregate {multi['tokens'] / m_el:.2f}")
print(f"RESULT {N}.errors {single['errors'] + multi['errors']}")
