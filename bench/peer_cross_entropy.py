# PyTorch peer for bench_cross_entropy: torch.nn.functional.cross_entropy forward + backward over
# N = 4096 rows x V = 32000 classes, f32, logits requiring grad (log_softmax + nll_loss inside torch).
# Run: LD_PRELOAD=/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0 OMP_NUM_THREADS=2 /usr/bin/python3 bench/peer_cross_entropy.py
# Prints `RESULT cross_entropy_V32k <median seconds per forward+backward> s`.
import statistics
import sys
import time

try:
    import torch
except ImportError:
    print("peer_cross_entropy: PyTorch is not installed (Debian package python3-torch); "
          "run scripts/install-deps.sh --with-torch", file=sys.stderr)
    sys.exit(2)

N, V = 4096, 32000
WARMUP, REPS = 2, 9


def main():
    torch.set_num_threads(2)
    torch.manual_seed(0)
    logits = (torch.randn(N, V) * 2.0).requires_grad_(True)
    target = torch.randint(0, V, (N,))
    loss = None

    def step():
        nonlocal loss
        logits.grad = None
        loss = torch.nn.functional.cross_entropy(logits, target)
        loss.backward()

    for _ in range(WARMUP):
        step()
    times = []
    for _ in range(REPS):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    print(f"RESULT cross_entropy_V32k {statistics.median(times):.6g} s")
    with torch.no_grad():
        t0 = time.perf_counter()
        torch.nn.functional.cross_entropy(logits, target)
        fwd = time.perf_counter() - t0
    print(f"INFO torch {torch.__version__} threads {torch.get_num_threads()}, loss {loss.item():.6f}, "
          f"forward only {fwd:.4f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
