#!/usr/bin/env python3
"""PyTorch peer for bench/bench_train.cpp: the same Llama-style model (RMSNorm, RoPE rotate_half,
causal attention as matmul + masked softmax, SwiGLU, untied LM head), trained with AdamW and
clipping on random tokens, and batch-1 greedy decoding with a KV cache in eager mode.
Run with Debian's python3-torch, 2 threads, the OpenMP OpenBLAS preloaded (bench/run.sh does).
Prints RESULT lines like the C++ side. Usage: peer_train.py [A|B|B_bf16|decode_A ...]"""
import math
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    print("peer_train.py: python3-torch is not installed (scripts/install-deps.sh --with-torch)", file=sys.stderr)
    sys.exit(2)

torch.set_num_threads(2)

CONFIGS = {
    "A": dict(d=256, layers=4, heads=4, inter=704),
    "B": dict(d=512, layers=8, heads=8, inter=1408),
}
V, T, B = 4096, 256, 16


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(D, n, theta=10000.0):
    inv = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.float64) / D))
    ang = torch.outer(torch.arange(n, dtype=torch.float64), inv)
    emb = torch.cat([ang, ang], dim=-1)
    return emb.cos().float(), emb.sin().float()


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


class Block(nn.Module):
    def __init__(self, d, heads, inter):
        super().__init__()
        self.h, self.D = heads, d // heads
        self.n1, self.n2 = RMSNorm(d), RMSNorm(d)
        self.q = nn.Linear(d, d, bias=False)
        self.k = nn.Linear(d, d, bias=False)
        self.v = nn.Linear(d, d, bias=False)
        self.o = nn.Linear(d, d, bias=False)
        self.gate = nn.Linear(d, inter, bias=False)
        self.up = nn.Linear(d, inter, bias=False)
        self.down = nn.Linear(inter, d, bias=False)

    def forward(self, x, cos, sin, cache=None):
        Bb, Tt, C = x.shape
        h = self.n1(x)
        q = self.q(h).view(Bb, Tt, self.h, self.D).transpose(1, 2)  # (B, H, T, D)
        k = self.k(h).view(Bb, Tt, self.h, self.D).transpose(1, 2)
        v = self.v(h).view(Bb, Tt, self.h, self.D).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if cache is not None:
            if "k" in cache:
                k = torch.cat([cache["k"], k], dim=2)
                v = torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        S = k.shape[2]
        att = (q @ k.transpose(-1, -2)) / math.sqrt(self.D)  # (B, H, T, S)
        if Tt > 1:
            mask = torch.ones(Tt, S, dtype=torch.bool).triu(S - Tt + 1)
            att = att.masked_fill(mask, float("-inf"))
        y = F.softmax(att, dim=-1) @ v
        x = x + self.o(y.transpose(1, 2).reshape(Bb, Tt, C))
        h = self.n2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Model(nn.Module):
    def __init__(self, d, layers, heads, inter):
        super().__init__()
        self.emb = nn.Embedding(V, d)
        self.blocks = nn.ModuleList([Block(d, heads, inter) for _ in range(layers)])
        self.norm = RMSNorm(d)
        self.head = nn.Linear(d, V, bias=False)
        self.cos, self.sin = rope_tables(d // heads, T)

    def forward(self, idx, caches=None, pos=0):
        Tt = idx.shape[1]
        cos, sin = self.cos[pos:pos + Tt], self.sin[pos:pos + Tt]
        x = self.emb(idx)
        for i, b in enumerate(self.blocks):
            x = b(x, cos, sin, None if caches is None else caches[i])
        return self.head(self.norm(x))


def train(name, bf16, steps):
    cfg = CONFIGS[name]
    torch.manual_seed(0)
    m = Model(**cfg)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-4, weight_decay=0.01)

    def step():
        data = torch.randint(0, V, (B, T + 1))
        x, y = data[:, :-1], data[:, 1:]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = m(x)
        loss = F.cross_entropy(logits.float().reshape(-1, V), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    for _ in range(2):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    dt = (time.perf_counter() - t0) / steps
    print(f"RESULT train_{name}{'_bf16' if bf16 else ''} {B * T / dt:.6g} tokens/s", flush=True)


@torch.no_grad()
def decode(name):
    cfg = CONFIGS[name]
    torch.manual_seed(0)
    m = Model(**cfg).eval()
    best = 0.0
    for _ in range(3):
        caches = [dict() for _ in m.blocks]
        tok = torch.tensor([[1]])
        logits = m(tok, caches, 0)
        t0 = time.perf_counter()
        n = 255
        for i in range(n):
            nxt = logits[:, -1].argmax(-1, keepdim=True)
            if i == n - 1:
                break
            logits = m(nxt, caches, i + 1)
        best = max(best, (n - 1) / (time.perf_counter() - t0))
    print(f"RESULT decode_{name} {best:.6g} tokens/s", flush=True)


def main():
    what = sys.argv[1:] or ["A", "B", "B_bf16", "decode_A"]
    print(f"INFO torch {torch.__version__} threads {torch.get_num_threads()}", file=sys.stderr)
    for w in what:
        if w == "A":
            train("A", False, 6)
        elif w == "B":
            train("B", False, 3)
        elif w == "B_bf16":
            train("B", True, 3)
        elif w == "decode_A":
            decode("A")


if __name__ == "__main__":
    main()
