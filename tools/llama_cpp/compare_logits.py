#!/usr/bin/env python3
"""Compares llama.cpp's per-token log-probabilities with lmlab's logits on the same tokens.

llama.cpp side: the file `llama-perplexity --kl-divergence-base FILE` writes (the layout below was
read from its examples/perplexity/perplexity.cpp; nothing of it is reused here):
    char[8] "_logits_", int32 n_ctx, int32 n_vocab, int32 n_chunk,
    int32 tokens[n_chunk * n_ctx]                      (the evaluated text, chunk after chunk)
    then per chunk, for positions first = n_ctx / 2 .. n_ctx - 2 (the second half, as its
    perplexity scores them), one record of nv = 2 * ((n_vocab + 1) // 2) + 4 uint16:
        float32 scale, float32 min_log_prob  (the first 4 uint16)
        uint16 q[n_vocab]:  log p_i = min_log_prob + scale * q_i  for q_i > 0; q_i = 0 means
                            "at most min_log_prob" (the range kept is 16 nats below the top logit)
    So each stored log-prob is exact to scale / 2 (about 1.2e-4 nats): the floor of any comparison.
lmlab side: one safetensors file per chunk from `lmlab logits --tokens ...`, holding "logits"
[T, V] (or [1, T, V]) f32 and optionally "tokens".

Usage:
    compare_logits.py tokens BASE.bin CHUNK           prints chunk CHUNK's tokens, comma-separated
    compare_logits.py compare BASE.bin OURS0.safetensors [OURS1 ...] [--json OUT.json]
Prints perplexity from both sides on the scored positions, max |delta log-prob| over the vocabulary
entries llama.cpp kept, max |delta| on the target tokens, mean KL(llama.cpp || lmlab) and top-1
agreement.
"""
import json
import struct
import sys

import numpy as np


class BaseFile:
    def __init__(self, path):
        with open(path, "rb") as f:
            data = f.read()
        if data[:8] != b"_logits_":
            sys.exit(f"{path}: not a llama-perplexity --kl-divergence-base file (magic {data[:8]!r})")
        self.n_ctx, self.n_vocab, self.n_chunk = struct.unpack_from("<iii", data, 8)
        off = 20
        n_tok = self.n_chunk * self.n_ctx
        self.tokens = np.frombuffer(data, dtype="<i4", count=n_tok, offset=off).reshape(self.n_chunk, self.n_ctx)
        off += 4 * n_tok
        self.first = self.n_ctx // 2
        self.rows = self.n_ctx - 1 - self.first
        self.nv = 2 * ((self.n_vocab + 1) // 2) + 4
        need = off + self.n_chunk * self.rows * self.nv * 2
        if len(data) != need:
            sys.exit(f"{path}: {len(data)} bytes, expected {need} for n_ctx={self.n_ctx} n_vocab={self.n_vocab} "
                     f"n_chunk={self.n_chunk}")
        self.records = np.frombuffer(data, dtype="<u2", offset=off).reshape(self.n_chunk, self.rows, self.nv)

    def chunk(self, c):
        """(log-probs [rows, V] with -inf where q == 0, scale per row, min_log_prob per row)."""
        rec = self.records[c]
        head = np.ascontiguousarray(rec[:, :4]).view("<f4")  # [rows, 2]
        scale, minlp = head[:, 0].astype(np.float64), head[:, 1].astype(np.float64)
        q = rec[:, 4:4 + self.n_vocab].astype(np.float64)
        lp = minlp[:, None] + scale[:, None] * q
        lp[q == 0] = -np.inf
        return lp, scale, minlp


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8:8 + n])
    base = 8 + n
    dtypes = {"F32": "<f4", "F64": "<f8", "I32": "<i4", "I64": "<i8", "F16": "<f2"}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in dtypes:
            sys.exit(f"{path}: tensor {name} has dtype {info['dtype']}, expected one of {sorted(dtypes)}")
        b, e = info["data_offsets"]
        out[name] = np.frombuffer(data[base + b:base + e], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
    return out


def log_softmax(x):
    x = x.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def compare(base, ours_paths):
    if len(ours_paths) != base.n_chunk:
        sys.exit(f"{len(ours_paths)} lmlab files for {base.n_chunk} chunks")
    nll_l, nll_o, max_d, max_tgt, kl, top1, n = 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0
    max_scale = 0.0
    for c, path in enumerate(ours_paths):
        t = read_safetensors(path)
        if "logits" not in t:
            sys.exit(f"{path}: no 'logits' tensor (has {sorted(t)})")
        logits = t["logits"].reshape(-1, t["logits"].shape[-1])
        if logits.shape != (base.n_ctx, base.n_vocab):
            sys.exit(f"{path}: logits {list(logits.shape)}, expected [{base.n_ctx}, {base.n_vocab}]")
        toks = base.tokens[c]
        if "tokens" in t and not np.array_equal(t["tokens"].reshape(-1).astype(np.int64), toks.astype(np.int64)):
            sys.exit(f"{path}: its tokens differ from chunk {c} of the llama.cpp file")
        lp_l, scale, minlp = base.chunk(c)
        lp_o = log_softmax(logits[base.first:base.first + base.rows])
        tgt = toks[base.first + 1:base.first + 1 + base.rows]
        r = np.arange(base.rows)
        kept = np.isfinite(lp_l) & (lp_o > minlp[:, None])
        d = np.abs(np.where(kept, lp_l - lp_o, 0.0))
        max_d = max(max_d, float(d.max()))
        max_scale = max(max_scale, float(scale.max()))
        # llama.cpp's NLL of the target: exact in its own run; from the file when q > 0.
        tl, to = lp_l[r, tgt], lp_o[r, tgt]
        ok = np.isfinite(tl)
        max_tgt = max(max_tgt, float(np.abs(tl[ok] - to[ok]).max()) if ok.any() else 0.0)
        nll_l += float(-np.where(ok, tl, minlp).sum())
        nll_o += float(-to.sum())
        p_l = np.where(np.isfinite(lp_l), np.exp(lp_l), 0.0)
        kl += float((p_l * np.where(p_l > 0, lp_l - lp_o, 0.0)).sum())
        top1 += int((np.argmax(np.where(np.isfinite(lp_l), lp_l, -1e30), axis=1) == np.argmax(lp_o, axis=1)).sum())
        n += base.rows
    return {
        "positions": n,
        "ppl_llama_cpp": float(np.exp(nll_l / n)),
        "ppl_lmlab": float(np.exp(nll_o / n)),
        "max_abs_dlogprob": max_d,
        "max_abs_dlogprob_target": max_tgt,
        "mean_kl": kl / n,
        "top1_agreement": top1 / n,
        "file_resolution": max_scale / 2,
    }


def main(argv):
    if len(argv) >= 3 and argv[0] == "tokens":
        base = BaseFile(argv[1])
        c = int(argv[2])
        if not 0 <= c < base.n_chunk:
            sys.exit(f"chunk {c} out of range (the file has {base.n_chunk})")
        print(",".join(str(int(x)) for x in base.tokens[c]))
        return
    if len(argv) >= 3 and argv[0] == "compare":
        out_json = None
        args = list(argv[2:])
        if "--json" in args:
            i = args.index("--json")
            out_json = args[i + 1]
            del args[i:i + 2]
        res = compare(BaseFile(argv[1]), args)
        print(" ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in res.items()))
        if out_json:
            with open(out_json, "w") as f:
                json.dump(res, f, indent=1)
        return
    sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
