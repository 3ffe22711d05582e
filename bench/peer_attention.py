# PyTorch peer for bench_attention: causal attention forward+backward at B=4, H=8, T=1024, D=64, f32,
# written with explicit matmuls and a masked softmax (what a model without a fused kernel does).
# Run: LD_PRELOAD=/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0 OMP_NUM_THREADS=2 /usr/bin/python3 bench/peer_attention.py
# Prints RESULT lines in the format of bench/bench_util.h (median seconds per forward+backward).
import math
import statistics
import sys
import time

try:
    import torch
except ImportError:
    print("peer_attention: PyTorch is not installed (Debian package python3-torch); "
          "run scripts/install-deps.sh --with-torch", file=sys.stderr)
    sys.exit(2)

B, H, T, D = 4, 8, 1024, 64
WARMUP, REPS = 2, 7


def main():
    torch.set_num_threads(2)
    torch.manual_seed(0)
    q = torch.randn(B, H, T, D, requires_grad=True)
    k = torch.randn(B, H, T, D, requires_grad=True)
    v = torch.randn(B, H, T, D, requires_grad=True)
    r = torch.randn(B, H, T, D)
    scale = 1.0 / math.sqrt(D)
    # True above the diagonal: key j > query i is masked (T == S, so bottom-right == top-left).
    causal = torch.ones(T, T, dtype=torch.bool).triu(1)

    def step():
        for t in (q, k, v):
            t.grad = None
        s = (q @ k.transpose(-2, -1)) * scale           # [B, H, T, T]
        s = s.masked_fill(causal, float("-inf"))
        p = torch.softmax(s, dim=-1)                    # [B, H, T, T], saved for backward
        out = p @ v                                     # [B, H, T, D]
        (out * r).sum().backward()

    for _ in range(WARMUP):
        step()
    times = []
    for _ in range(REPS):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    print(f"RESULT attention_fwd_bwd_T1024 {statistics.median(times):.6g} s")
    # Analytic: the probabilities P (kept for backward) plus, at the backward's peak, the score
    # gradients dP and dS, each a [B, H, T, T] f32 matrix; the transient forward scores are freed
    # before backward and counted once with P's peer dP.
    tt_bytes = B * H * T * T * 4
    print(f"RESULT attention_torch_peak_extra_bytes {3 * tt_bytes} bytes")
    print(f"INFO torch {torch.__version__} threads {torch.get_num_threads()}", file=sys.stderr)


if __name__ == "__main__":
    main()
