# PyTorch peer for bench_attention: causal attention forward+backward at B=4, H=8, T=1024, D=64, f32,
# written with explicit matmuls and a masked softmax (what a model without a fused kernel does).
# Run: LD_PRELOAD=/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0 OMP_NUM_THREADS=2 /usr/bin/python3 bench/peer_attention.py
# Prints RESULT lines in the format of bench/bench_util.h (median seconds per forward+backward, and the
# peak bytes allocated during one forward+backward, measured with the torch profiler).
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


def measured_peak_bytes(fn):
    """Peak of the bytes PyTorch's CPU allocator holds while fn() runs, above what it held before:
    every allocation and free during one call, recorded by the profiler (profile_memory=True) and
    replayed in order. None when this torch build's profiler does not expose the events."""
    try:
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            fn()
        events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    except (ImportError, AttributeError, RuntimeError) as err:
        print(f"INFO peak memory not measured: {err}", file=sys.stderr)
        return None
    events.sort(key=lambda e: e.start_us())  # stable: same-microsecond events keep their order
    cur = peak = 0
    for e in events:
        cur += e.nbytes()
        peak = max(peak, cur)
    return peak


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
    for t in (q, k, v):  # freed before profiling: a free of an earlier block is not in its events
        t.grad = None
    peak = measured_peak_bytes(step)
    if peak is not None:
        print(f"RESULT attention_torch_peak_bytes {peak} bytes")
    print(f"INFO torch {torch.__version__} threads {torch.get_num_threads()}", file=sys.stderr)


if __name__ == "__main__":
    main()
