"""attn_implementation="tqfa" in real transformers models, against the same models on "sdpa".

Small models are built from configs with random weights (no downloads), one per attention shape
tqfa must get right: Llama (GQA 4:1), Qwen2 (7 q heads per kv head), Mistral (MQA, sliding window
shorter than the prompt) and Phi-3 (head dim 96). The batch is left-padded; everything runs in
float32 on the CPU, where tqfa and SDPA should agree to rounding.
"""

from __future__ import annotations

import inspect

import pytest
import torch

transformers = pytest.importorskip("transformers")

from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    LlamaConfig,
    MistralConfig,
    Phi3Config,
    Qwen2Config,
)
from transformers.integrations.sdpa_attention import sdpa_attention_forward  # noqa: E402
from transformers.masking_utils import AttentionMaskInterface  # noqa: E402

from tqfa.integrations import custom_op  # noqa: E402
from tqfa.integrations import huggingface as tqfa_hf  # noqa: E402

SMALL = dict(vocab_size=97, intermediate_size=96, num_hidden_layers=2, pad_token_id=0, bos_token_id=1,
             eos_token_id=2)
CONFIGS = {
    "llama-gqa4": lambda: LlamaConfig(hidden_size=64, num_attention_heads=8, num_key_value_heads=2, **SMALL),
    "qwen2-gqa7": lambda: Qwen2Config(hidden_size=112, num_attention_heads=14, num_key_value_heads=2,
                                      **SMALL),
    "mistral-mqa-window5": lambda: MistralConfig(hidden_size=64, num_attention_heads=4, num_key_value_heads=1,
                                                 sliding_window=5, **SMALL),
    "phi3-d96": lambda: Phi3Config(hidden_size=192, num_attention_heads=2, num_key_value_heads=1, **SMALL),
}
PADS = (0, 5, 9)  # left padding per row; row 0 is unpadded
LENGTH = 13
TOL = dict(atol=2e-5, rtol=1e-4)


@pytest.fixture(scope="module", autouse=True)
def registered():
    tqfa_hf.register()


@pytest.fixture(scope="module", params=list(CONFIGS))
def model(request):
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(CONFIGS[request.param](), attn_implementation="sdpa").eval()


def left_padded(seed: int = 0, pad_id: int = 0):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 97, (len(PADS), LENGTH), generator=gen)
    mask = torch.ones_like(ids)
    for row, pad in enumerate(PADS):
        ids[row, :pad] = pad_id
        mask[row, :pad] = 0
    return ids, mask


def logits(model, implementation: str, ids, mask, **kwargs) -> torch.Tensor:
    model.set_attn_implementation(implementation)
    with torch.no_grad():
        return model(ids, attention_mask=mask, **kwargs).logits


def test_logits_match_sdpa(model):
    ids, mask = left_padded()
    real = mask.bool()
    torch.testing.assert_close(logits(model, "tqfa", ids, mask)[real], logits(model, "sdpa", ids, mask)[real],
                               **TOL)


def test_greedy_generate_matches_sdpa(model):
    # Prefill with a padding mask, then decode steps against the KV cache with [B, 1, 1, Skv] masks.
    ids, mask = left_padded()
    tokens = {}
    for implementation in ("sdpa", "tqfa"):
        model.set_attn_implementation(implementation)
        tokens[implementation] = model.generate(ids, attention_mask=mask, max_new_tokens=8, min_new_tokens=8,
                                                do_sample=False, pad_token_id=0)
    assert tokens["tqfa"].shape[1] == LENGTH + 8
    assert torch.equal(tokens["tqfa"], tokens["sdpa"])


def test_padding_is_honoured(model):
    ids, mask = left_padded()
    real = mask.bool()
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    padded = logits(model, "tqfa", ids, mask, position_ids=positions)
    # Other token ids on the padded positions change nothing that is not padding...
    other_ids, _ = left_padded(pad_id=7)
    torch.testing.assert_close(logits(model, "tqfa", other_ids, mask, position_ids=positions)[real],
                               padded[real], **TOL)
    # ...and each padded row equals its sequence run alone, without padding.
    for row, pad in enumerate(PADS):
        alone = logits(model, "tqfa", ids[row:row + 1, pad:], mask[row:row + 1, pad:])
        torch.testing.assert_close(padded[row, pad:], alone[0], **TOL)


def test_without_the_mask_function_padding_is_lost(model, monkeypatch):
    # Why register() installs a mask function: without it transformers hands the attention
    # attention_mask=None, and the padded rows silently attend to their padding.
    ids, mask = left_padded()
    real = mask.bool()
    expected = logits(model, "sdpa", ids, mask)[real]
    monkeypatch.delitem(AttentionMaskInterface._global_mapping, tqfa_hf.NAME)
    if getattr(model.config, "sliding_window", None) is None:
        assert not torch.allclose(logits(model, "tqfa", ids, mask)[real], expected, **TOL)
    else:  # the window cannot be enforced without a mask either: tqfa refuses
        with pytest.raises(ValueError, match="sliding_window"):
            logits(model, "tqfa", ids, mask)


def test_sliding_window_reaches_tqfa():
    torch.manual_seed(0)
    config = CONFIGS["mistral-mqa-window5"]()
    model = AutoModelForCausalLM.from_config(config, attn_implementation="tqfa").eval()
    ids, mask = left_padded()
    windowed = logits(model, "tqfa", ids, mask)
    model.config.sliding_window = None
    assert not torch.allclose(logits(model, "tqfa", ids, mask), windowed, **TOL)


def test_from_pretrained_runs_tqfa(tmp_path, monkeypatch):
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(CONFIGS["llama-gqa4"]()).save_pretrained(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(tmp_path, attn_implementation="tqfa").eval()
    assert model.config._attn_implementation == "tqfa"
    calls, real_attention = [], custom_op.attention

    def spy(*args, **kwargs):
        calls.append(args[0].shape)
        return real_attention(*args, **kwargs)

    monkeypatch.setattr(tqfa_hf.custom_op, "attention", spy)
    ids, mask = left_padded()
    with torch.no_grad():
        got = model(ids, attention_mask=mask).logits
    assert len(calls) == model.config.num_hidden_layers
    torch.testing.assert_close(got[mask.bool()], logits(model, "sdpa", ids, mask)[mask.bool()], **TOL)


def test_compiled_model_has_no_graph_break():
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(CONFIGS["qwen2-gqa7"](), attn_implementation="tqfa").eval()
    ids, mask = left_padded()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    with torch.no_grad():
        got = compiled(ids, attention_mask=mask, use_cache=False).logits
    torch.testing.assert_close(got, logits(model, "tqfa", ids, mask, use_cache=False), atol=1e-6, rtol=1e-6)


class _Attention(torch.nn.Module):
    """What transformers' attention functions read from the module."""

    def __init__(self, groups: int):
        super().__init__()
        self.num_key_value_groups = groups
        self.is_causal = True


def _mask(kind: str, b: int, sq: int, skv: int, gen) -> torch.Tensor | None:
    if kind == "none":
        return None
    allowed = torch.rand(b, 1, sq, skv, generator=gen) > 0.3
    allowed[..., 0] = True  # no fully masked row: SDPA's answer there is not the spec's
    if kind == "bool":
        return allowed
    return torch.zeros(b, 1, sq, skv).masked_fill(~allowed, torch.finfo(torch.float32).min)


_HAS_POSITION_BIAS = "position_bias" in inspect.signature(sdpa_attention_forward).parameters


@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "position_bias"])
@pytest.mark.parametrize("is_causal", [None, False], ids=["causal_from_module", "not_causal"])
@pytest.mark.parametrize("mask", ["none", "bool", "float"])
@pytest.mark.parametrize("sq,skv", [(7, 7), (1, 12), (7, 12)], ids=["prefill", "decode", "kv_longer"])
def test_attention_function_matches_transformers_sdpa(sq, skv, mask, is_causal, bias):
    if bias and not _HAS_POSITION_BIAS:
        pytest.skip("this transformers' sdpa_attention_forward has no position_bias")
    gen = torch.Generator().manual_seed(sq * 100 + skv)
    b, hq, hkv, d = 2, 6, 2, 16
    q = torch.randn(b, hq, sq, d, generator=gen)
    k, v = torch.randn(2, b, hkv, skv, d, generator=gen)
    kwargs = dict(attention_mask=_mask(mask, b, sq, skv, gen), scaling=0.3, is_causal=is_causal)
    if bias:
        kwargs["position_bias"] = torch.randn(1, hq, sq, skv, generator=gen)
    module = _Attention(hq // hkv)
    expected, _ = sdpa_attention_forward(module, q, k, v, **kwargs)
    got, weights = tqfa_hf.attention_forward(module, q, k, v, **kwargs)
    assert weights is None
    assert got.shape == (b, sq, hq, d) and got.is_contiguous()
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(dropout=0.1), "dropout"),
        (dict(softcap=30.0), "soft-capping"),
        (dict(s_aux=torch.zeros(4)), "sinks"),
        (dict(block_table=torch.zeros(1, 1, dtype=torch.int32)), "paged"),
        (dict(output_attentions=True), "attention weights"),
        (dict(sliding_window=4), "sliding_window=4"),
    ],
    ids=["dropout", "softcap", "sinks", "paged", "output_attentions", "window_without_mask"],
)
def test_refuses_what_it_cannot_honour(kwargs, match):
    q, k, v = torch.randn(3, 1, 4, 6, 8)
    error = ValueError if "sliding_window" in kwargs else NotImplementedError
    with pytest.raises(error, match=match):
        tqfa_hf.attention_forward(_Attention(1), q, k, v, None, **kwargs)


def test_training_gradients_match_sdpa():
    # Backward goes through the custom op's recomputation on the chunked backend.
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(CONFIGS["qwen2-gqa7"](), attn_implementation="sdpa").train()
    ids, mask = left_padded()
    labels = ids.masked_fill(mask == 0, -100)
    grads = {}
    for implementation in ("sdpa", "tqfa"):
        model.zero_grad()
        model.set_attn_implementation(implementation)
        model(ids, attention_mask=mask, labels=labels).loss.backward()
        grads[implementation] = [p.grad.clone() for p in model.parameters()]
    for got, want in zip(grads["tqfa"], grads["sdpa"], strict=True):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-4)


def test_training_with_attention_dropout_raises():
    torch.manual_seed(0)
    config = CONFIGS["llama-gqa4"]()
    config.attention_dropout = 0.1
    model = AutoModelForCausalLM.from_config(config, attn_implementation="tqfa").train()
    ids, mask = left_padded()
    with pytest.raises(NotImplementedError, match="model.eval()"):
        model(ids, attention_mask=mask)
