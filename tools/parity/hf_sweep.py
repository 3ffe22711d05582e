#!/usr/bin/python3
"""Parity sweep over Hugging Face folders of many shapes and dtypes: writes random HF folders
(config.json + model.safetensors in f32, bf16 or f16; tied and untied heads, a tied checkpoint that
still carries lm_head.weight, GQA, explicit head_dim != hidden / heads, Qwen2 biases, Qwen3 q/k
norms, Qwen3-MoE, llama3 rope scaling), runs `lmlab logits --tokens` on each (as a user would), and
compares with the plain-torch twin of the HF forward (tools/fixtures/decoder_twin.py, float64 over
the stored values). Each folder is checked on the default bf16 path and with LMLAB_BF16_GEMM=f32
(the path of CPUs without oneDNN bf16 kernels); set ONEDNN_MAX_CPU_ISA=AVX2 to imitate one.

    tools/parity/hf_sweep.py build/bin/lmlab [--keep DIR]

Needs Debian's python3-torch. Prints one line per folder and path; exits 1 on any failure."""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from common import write_safetensors, torch  # noqa: E402
import decoder_twin as twin  # noqa: E402

f64 = torch.float64
DT = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}


def llama(**kw):
    c = dict(architectures=["LlamaForCausalLM"], model_type="llama", vocab_size=600, hidden_size=128,
             intermediate_size=344, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
             max_position_embeddings=256, rms_norm_eps=1e-5, rope_theta=10000.0, hidden_act="silu",
             tie_word_embeddings=False)
    c.update(kw)
    return c


def qwen2(**kw):
    return llama(architectures=["Qwen2ForCausalLM"], model_type="qwen2", rms_norm_eps=1e-6,
                 rope_theta=1000000.0, **kw)


def qwen3(**kw):
    return llama(architectures=["Qwen3ForCausalLM"], model_type="qwen3", rms_norm_eps=1e-6, **kw)


CASES = [
    ("llama-bf16-tied-issue", llama(tie_word_embeddings=True), "bf16", False),
    ("llama-f16-tied", llama(tie_word_embeddings=True, vocab_size=601, hidden_size=96, num_attention_heads=3,
                             num_key_value_heads=1), "f16", False),
    ("llama-bf16-gqa-headdim", llama(hidden_size=80, num_attention_heads=6, num_key_value_heads=2, head_dim=16,
                                     intermediate_size=200, vocab_size=509), "bf16", False),
    ("llama-bf16-tied-with-lm_head", llama(tie_word_embeddings=True, vocab_size=333), "bf16", True),
    ("llama-bf16-attn-bias", llama(attention_bias=True, num_key_value_heads=2), "bf16", False),
    ("llama-bf16-llama3-rope", llama(rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                                       high_freq_factor=4.0,
                                                       original_max_position_embeddings=32)), "bf16", False),
    ("qwen2-bf16-tied", qwen2(tie_word_embeddings=True, hidden_size=96, num_attention_heads=6,
                              num_key_value_heads=2, intermediate_size=136), "bf16", False),
    ("qwen3-bf16-headdim", qwen3(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=48,
                                 intermediate_size=96, vocab_size=503), "bf16", False),
    ("qwen3-f16-tied", qwen3(tie_word_embeddings=True, hidden_size=64, num_attention_heads=2,
                             num_key_value_heads=1, head_dim=32), "f16", False),
    ("qwen3moe-bf16", dict(qwen3(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                                 intermediate_size=96),
                           architectures=["Qwen3MoeForCausalLM"], model_type="qwen3_moe", num_experts=4,
                           num_experts_per_tok=2, moe_intermediate_size=40, norm_topk_prob=True,
                           decoder_sparse_step=1, mlp_only_layers=[0]), "bf16", False),
    ("llama-f32", llama(num_key_value_heads=2), "f32", False),
]
LENGTHS = (1, 5, 37)


def read_safetensors(path):
    raw = Path(path).read_bytes()
    n = int.from_bytes(raw[:8], "little")
    head = json.loads(raw[8:8 + n])
    out = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        buf = raw[8 + n + a:8 + n + b]
        dt = {"F32": torch.float32, "I32": torch.int32, "I64": torch.int64}[v["dtype"]]
        out[k] = torch.frombuffer(bytearray(buf), dtype=dt).reshape(v["shape"])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("lmlab")
    ap.add_argument("--keep")
    args = ap.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="hf_sweep_"))
    fails = 0
    for i, (name, cfg, dt, extra_head) in enumerate(CASES):
        g = torch.Generator().manual_seed(1000 + i)
        cfg = dict(cfg, torch_dtype={"f32": "float32", "bf16": "bfloat16", "f16": "float16"}[dt])
        P = twin.init_params(cfg, g)
        stored = {n: t.to(DT[dt]) for n, t in P.items()}
        if extra_head:  # a tied checkpoint that also carries the head (some exporters write it)
            stored["lm_head.weight"] = stored["model.embed_tokens.weight"].clone()
        P = {n: t.to(f64) for n, t in stored.items()}
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        write_safetensors(folder / "model.safetensors", stored, {"format": "pt"})
        (folder / "config.json").write_text(json.dumps(cfg, indent=1))
        ids = torch.randint(0, cfg["vocab_size"], (max(LENGTHS),), generator=g)
        for T in LENGTHS:
            with torch.no_grad():
                ref = twin.forward(cfg, P, ids[:T].reshape(1, T))[0]
            scale = ref.abs().max().item()
            for path in ("default", "f32"):
                env = dict(os.environ)
                if path == "f32":
                    env["LMLAB_BF16_GEMM"] = "f32"
                out = folder / f"logits_{T}_{path}.safetensors"
                r = subprocess.run([args.lmlab, "logits", "-m", str(folder), "--tokens",
                                    ",".join(str(int(x)) for x in ids[:T]), "--out", str(out)],
                                   env=env, capture_output=True, text=True)
                if r.returncode != 0:
                    print(f"FAIL {name} T={T} {path}: exit {r.returncode}: {r.stderr.strip()[-400:]}")
                    fails += 1
                    continue
                got = read_safetensors(out)["logits"].to(f64).reshape(ref.shape)
                err = (got - ref).abs().max().item()
                # f32 products of exactly stored weights: 1e-4; oneDNN bf16 products round activations
                rounds = dt == "bf16" and path == "default" and T > 1
                tol = 0.02 * scale if rounds else 1e-4 * max(1.0, scale)
                ok = err <= tol and torch.isfinite(got).all().item()
                fails += not ok
                print(f"{'ok  ' if ok else 'FAIL'} {name:32s} T={T:2d} {path:7s} max|d|={err:.2e} "
                      f"(tol {tol:.1e}, logit range {scale:.2f})")
    print(f"{fails} failed")
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
