"""attn_implementation="tqfa" on the GPU: the HF test models in bf16, Triton backend vs "sdpa".

    PYTHONPATH=src python benchmarks/gpu_hf_check.py              # writes $OUT/hf_check.json
    PYTHONPATH=src python benchmarks/gpu_hf_check.py --device cpu --backend chunked  # dry run

No downloads: the models of tests/test_huggingface.py (Llama GQA 4:1, Qwen2 7 q heads per kv head,
Mistral MQA with a sliding window shorter than the prompt, Phi-3 head dim 96), at GPU sizes with
random weights, on a left-padded batch. bf16 cannot match bf16 bit for bit, so both bf16 runs are
judged against the same model in float32 on "sdpa":
- logits (non-padded positions): tqfa's largest error may be at most 1.5x SDPA's (+ 1e-3);
- greedy generate() (KV cache, masked decode steps): tokens equal to bf16 SDPA's, or else every
  row's first departure from the float32 run is a near-tie: the float32 logits of the two tokens
  differ by at most 4x bf16 SDPA's logit error (bf16 may flip such ties either way);
- torch.compile(fullgraph=True) of one model: no graph break, logits equal to eager within bf16.
TQFA_BACKEND is set to --backend, so a backend that cannot run a call fails it instead of falling
back. Exits 1 if any check fails.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import time
import traceback

import torch
import transformers
from transformers import AutoModelForCausalLM, LlamaConfig, MistralConfig, Phi3Config, Qwen2Config

import tqfa
from tqfa.integrations import huggingface as tqfa_hf

COMMON = dict(vocab_size=1024, intermediate_size=1536, num_hidden_layers=4, max_position_embeddings=4096,
              pad_token_id=0, bos_token_id=1, eos_token_id=2)
CONFIGS = {
    "llama-gqa4-d128": lambda: LlamaConfig(hidden_size=1024, num_attention_heads=8, num_key_value_heads=2,
                                           **COMMON),
    "qwen2-gqa7-d64": lambda: Qwen2Config(hidden_size=896, num_attention_heads=14, num_key_value_heads=2,
                                          **COMMON),
    "mistral-mqa-d128-window200": lambda: MistralConfig(hidden_size=1024, num_attention_heads=8,
                                                        num_key_value_heads=1, sliding_window=200, **COMMON),
    "phi3-d96": lambda: Phi3Config(hidden_size=768, num_attention_heads=8, num_key_value_heads=4, **COMMON),
}
PADS = (0, 37, 150, 290)  # left padding per row of a 333-token batch: lengths off every block size
LENGTH = 333
NEW_TOKENS = 32


def left_padded(device):
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(3, COMMON["vocab_size"], (len(PADS), LENGTH), generator=gen)
    mask = torch.ones_like(ids)
    for row, pad in enumerate(PADS):
        ids[row, :pad] = 0
        mask[row, :pad] = 0
    return ids.to(device), mask.to(device)


@torch.no_grad()
def logits(model, implementation, ids, mask, **kwargs):
    model.set_attn_implementation(implementation)
    return model(ids, attention_mask=mask, **kwargs).logits.float()


@torch.no_grad()
def generate(model, implementation, ids, mask):
    model.set_attn_implementation(implementation)
    out = model.generate(ids, attention_mask=mask, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                         do_sample=False, pad_token_id=0)
    return out[:, LENGTH:].cpu()


@torch.no_grad()
def flip_margins(reference, ids, mask, tokens, tokens_fp32):
    """Per row, where `tokens` first leaves the float32 greedy path: the float32 model's logit of
    its own choice minus its logit of the token taken there (0.0 for a row that never leaves it).
    A flip is innocent when this margin is within bf16's logit error: a near-tie."""
    reference.set_attn_implementation("sdpa")
    margins = []
    for row, (got, want) in enumerate(zip(tokens, tokens_fp32, strict=True)):
        differ = (got != want).nonzero()
        if len(differ) == 0:
            margins.append(0.0)
            continue
        step = differ[0].item()
        prefix = torch.cat([ids[row], want[:step].to(ids.device)])[None]
        seen = torch.cat([mask[row], mask.new_ones(step)])[None]
        positions = (seen.cumsum(-1) - 1).clamp(min=0)  # as generate() numbers a left-padded row
        last = reference(prefix, attention_mask=seen, position_ids=positions).logits[0, -1].float()
        margins.append((last[want[step]] - last[got[step]]).item())
    return margins


def timed_ms(fn, device, repeats=5):
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / repeats * 1e3


def check_model(name, device, dtype):
    torch.manual_seed(0)
    reference = AutoModelForCausalLM.from_config(CONFIGS[name](), attn_implementation="sdpa").eval()
    reference.to(device)
    model = copy.deepcopy(reference).to(dtype)
    ids, mask = left_padded(device)
    real = mask.bool()
    exact = logits(reference, "sdpa", ids, mask)[real]
    got = {impl: logits(model, impl, ids, mask)[real] for impl in ("tqfa", "sdpa")}
    err = {impl: (got[impl] - exact).abs().max().item() for impl in got}
    mean_err = {impl: (got[impl] - exact).abs().mean().item() for impl in got}
    logits_ok = err["tqfa"] <= 1.5 * err["sdpa"] + 1e-3

    tokens = {impl: generate(model, impl, ids, mask) for impl in ("tqfa", "sdpa")}
    tokens_fp32 = generate(reference, "sdpa", ids, mask)
    margins = {impl: flip_margins(reference, ids, mask, tokens[impl], tokens_fp32) for impl in tokens}
    same_tokens = torch.equal(tokens["tqfa"], tokens["sdpa"])
    tie = 4 * err["sdpa"]
    generate_ok = same_tokens or max(margins["tqfa"]) <= tie

    forward_ms = {impl: timed_ms(lambda impl=impl: logits(model, impl, ids, mask), device)
                  for impl in ("tqfa", "sdpa")}
    return {
        "ok": logits_ok and generate_ok,
        "logits_ok": logits_ok,
        "generate_ok": generate_ok,
        "max_abs_err_vs_fp32": err,
        "mean_abs_err_vs_fp32": mean_err,
        "max_abs_diff_tqfa_vs_sdpa": (got["tqfa"] - got["sdpa"]).abs().max().item(),
        "logit_scale": exact.abs().max().item(),
        "generate_equal_to_sdpa": same_tokens,
        "generate_flip_margins_vs_fp32": margins,
        "near_tie_tolerance": tie,
        "forward_ms": forward_ms,
    }


def check_compile(device, dtype):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(CONFIGS["llama-gqa4-d128"](), attn_implementation="tqfa")
    model = model.eval().to(device, dtype)
    ids, mask = left_padded(device)
    eager = logits(model, "tqfa", ids, mask, use_cache=False)
    compiled = torch.compile(model, fullgraph=True)
    start = time.perf_counter()
    with torch.no_grad():
        got = compiled(ids, attention_mask=mask, use_cache=False).logits.float()
    diff = (got - eager)[mask.bool()].abs().max().item()
    return {"ok": diff <= 0.05 * eager.abs().max().item(), "max_abs_diff_vs_eager": diff,
            "compile_and_first_run_s": time.perf_counter() - start}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.environ.get("OUT", "benchmarks/results"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--backend", default="triton", help="TQFA_BACKEND for the tqfa runs")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile check")
    args = parser.parse_args()
    os.environ["TQFA_BACKEND"] = args.backend
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    tqfa_hf.register()
    results = {
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "tqfa": tqfa.__version__, "python": platform.python_version()},
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "backend": args.backend, "dtype": args.dtype, "models": {},
    }
    checks = [(name, lambda name=name: check_model(name, device, dtype)) for name in CONFIGS]
    if not args.no_compile:
        checks.append(("compile-llama-fullgraph", lambda: check_compile(device, dtype)))
    for name, check in checks:
        try:
            results["models"][name] = check()
        except Exception as error:  # one broken model must not hide the others' results
            results["models"][name] = {"ok": False, "error": f"{type(error).__name__}: {error}",
                                       "traceback": traceback.format_exc()}
        print(f"{name}: {json.dumps({k: v for k, v in results['models'][name].items() if k != 'traceback'})}",
              flush=True)
    results["ok"] = all(r["ok"] for r in results["models"].values())
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "hf_check.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
    print(f"{'PASS' if results['ok'] else 'FAIL'}: {path}")
    return 0 if results["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
