"""The custom op tqfa::attention: opcheck, gradients, torch.compile(fullgraph=True), torch.export."""

from __future__ import annotations

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.export import Dim

import tqfa
from cases import CASES, make_inputs
from oracle import reference
from tqfa.integrations import custom_op

# Small cases of the shared list: GQA 2:1 and 7:1, bottom-right causal, [B, S, H, D] views, bool
# and float masks, rows with no visible key, HF's finite minima, empty queries and empty keys.
CASE_IDS = [
    "b2-h4:2-q17-k17-d64-causal_tl",
    "b2-h2:1-q2-k17-d80-causal_br-mask_bool_2d",
    "b2-h4:2-q17-k130-d64-mask_fully_masked",
    "b2-h4:2-q17-k113-d64-mask_hf_min_rows",
    "b1-h7:1-q17-k130-d128-causal_br-mask_keypad_bool-hot_masked",
    "b1-h2:1-q0-k17-d16",
    "b1-h2:1-q17-k0-d16",
]
BY_ID = {case.id: case for case in CASES}
OPTIONS = {"top_left": True, "bottom_right": True, None: False}


def op_args(case, dtype, requires_grad=False, bshd_out=False):
    q, k, v, mask = make_inputs(case, dtype)
    if requires_grad:
        q, k, v = (t.detach().requires_grad_() for t in (q, k, v))
        if mask is not None and mask.is_floating_point():
            mask = mask.detach().requires_grad_()
    return (q, k, v, mask, OPTIONS[case.causal], None, case.causal or "top_left", None, bshd_out)


OPCHECKS = [pytest.param(case_id, torch.float32, False, id=case_id) for case_id in CASE_IDS] + [
    pytest.param(CASE_IDS[3], torch.float64, False, id="float64_lse"),
    pytest.param(CASE_IDS[0], torch.float32, True, id="bshd_out"),
    pytest.param("b2-h8:2-q113-k130-d64-causal_tl-bshd", torch.float32, True, id="bshd_in_bshd_out"),
    pytest.param("b3-h8:2-q1-k1000-d128-causal_br-mask_keypad_bool", torch.float32, True,
                 id="decode_bshd_out"),
]


@pytest.mark.parametrize("case_id,dtype,bshd_out", OPCHECKS)
def test_opcheck(case_id, dtype, bshd_out):
    # Schema, fake tensors (shapes AND strides), autograd registration, AOT dispatch with dynamic shapes.
    args = op_args(BY_ID[case_id], dtype, requires_grad=True, bshd_out=bshd_out)
    torch.library.opcheck(torch.ops.tqfa.attention.default, args)


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_forward_and_gradients_match_oracle(case_id):
    case = BY_ID[case_id]
    args = op_args(case, torch.float64, requires_grad=True)
    q, k, v, mask, is_causal, _, alignment, _, _ = args
    out, lse = custom_op.attention(q, k, v, mask, is_causal, causal_alignment=alignment, return_lse=True)
    ref_out, ref_lse = reference(q, k, v, mask, case.causal)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(lse, ref_lse)
    # Both outputs feed the loss, so the LSE's gradient is checked too (finite rows only: the
    # oracle's -inf rows have no gradient to compare).
    inputs = [t for t in (q, k, v, mask) if t is not None and t.requires_grad]
    weights = torch.randn_like(out), torch.randn_like(lse)

    def loss(o, lse):
        finite = torch.isfinite(lse)
        return (o * weights[0]).sum() + (torch.where(finite, lse, 0) * weights[1]).sum()

    grads = torch.autograd.grad(loss(out, lse), inputs)
    ref_loss = loss(ref_out, ref_lse)
    # Without keys the oracle returns constants: every gradient is zero.
    expected = (torch.autograd.grad(ref_loss, inputs, allow_unused=True) if ref_loss.requires_grad
                else [None] * len(inputs))
    for got, want in zip(grads, expected, strict=True):
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, torch.zeros_like(got) if want is None else want)


def test_gradcheck_float_mask():
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(1, 4, 5, 8, dtype=torch.float64, generator=gen).requires_grad_()
    k, v = (torch.randn(1, 2, 7, 8, dtype=torch.float64, generator=gen).requires_grad_() for _ in range(2))
    mask = torch.randn(5, 7, dtype=torch.float64, generator=gen).requires_grad_()  # broadcast mask

    def f(q, k, v, mask):
        return custom_op.attention(q, k, v, mask, is_causal=True, causal_alignment="bottom_right",
                                   return_lse=True)

    assert torch.autograd.gradcheck(f, (q, k, v, mask), fast_mode=True)


class Block(torch.nn.Module):
    """A small attention block in HF's layout: projections to [B, S, H, D], attention on
    transposed views, back to [B, S, H*D]."""

    def __init__(self, dim=48, q_heads=6, kv_heads=2, head_dim=8):
        super().__init__()
        self.shape = q_heads, kv_heads, head_dim
        self.q = torch.nn.Linear(dim, q_heads * head_dim)
        self.kv = torch.nn.Linear(dim, 2 * kv_heads * head_dim)
        self.o = torch.nn.Linear(q_heads * head_dim, dim)

    def forward(self, x, mask):
        b, s, _ = x.shape
        hq, hkv, d = self.shape
        q = self.q(x).view(b, s, hq, d).transpose(1, 2)
        k, v = self.kv(x).view(b, s, 2, hkv, d).unbind(2)
        k, v = k.transpose(1, 2), v.transpose(1, 2)
        out = custom_op.attention(q, k, v, mask, is_causal=True, bshd_out=True)
        return self.o(out.transpose(1, 2).reshape(b, s, hq * d))


def block_inputs(seq=11, batch=2, requires_grad=False):
    gen = torch.Generator().manual_seed(seq)
    x = torch.randn(batch, seq, 48, generator=gen).requires_grad_(requires_grad)
    keep = torch.ones(batch, 1, 1, seq, dtype=torch.bool)
    keep[1:, ..., seq - 3:] = False  # key padding on the later rows
    return x, keep


def test_compile_fullgraph_matches_eager():
    torch.manual_seed(0)
    block = Block()
    compiled = torch.compile(block, fullgraph=True)  # fullgraph: any graph break is an error
    x, mask = block_inputs(requires_grad=True)
    expected = block(x, mask)
    expected_grads = torch.autograd.grad(expected.square().sum(), [x, *block.parameters()])
    got = compiled(x, mask)
    grads = torch.autograd.grad(got.square().sum(), [x, *block.parameters()])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    for g, e in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-5)


def test_export_holds_the_op_and_runs():
    torch.manual_seed(0)
    block = Block().eval()
    seq = Dim("seq", min=2, max=4096)
    with torch.no_grad():
        program = torch.export.export(block, block_inputs(), dynamic_shapes=({1: seq}, {3: seq}))
    targets = [node.target for node in program.graph.nodes]
    assert torch.ops.tqfa.attention.default in targets
    for length in (11, 29):  # a new length reuses the program
        x, mask = block_inputs(length)
        with torch.no_grad():
            torch.testing.assert_close(program.module()(x, mask), block(x, mask), atol=1e-6, rtol=1e-6)


def test_backend_is_chosen_when_the_op_runs(monkeypatch):
    # Traced while TQFA_BACKEND names a valid backend, run after it names none: the program must
    # ask the dispatcher again, so the run fails with the dispatcher's message.
    monkeypatch.setenv("TQFA_BACKEND", "chunked")
    block = Block().eval()
    with torch.no_grad():
        program = torch.export.export(block, block_inputs())
        monkeypatch.setenv("TQFA_BACKEND", "no-such-backend")
        with pytest.raises(ValueError, match="TQFA_BACKEND"):
            program.module()(*block_inputs())


def test_same_results_as_tqfa_attention():
    case = BY_ID["b2-h4:2-q17-k113-d64-mask_hf_min_rows"]
    q, k, v, mask = make_inputs(case, torch.float32)
    expected = tqfa.attention(q, k, v, mask, return_lse=True)
    for got, want in zip(custom_op.attention(q, k, v, mask, return_lse=True), expected, strict=True):
        assert torch.equal(got, want)


def test_plain_eager_calls_skip_the_op_dispatch(monkeypatch):
    # The op's dispatch costs host time and records nothing for an eager call without autograd
    # or tracing; calls that need it keep it (gradients, compile and export: the tests above).
    calls = []
    real = custom_op._attention_op
    monkeypatch.setattr(custom_op, "_attention_op", lambda *args: calls.append(args) or real(*args))
    q, k, v, mask = make_inputs(BY_ID[CASE_IDS[3]], torch.float32)
    expected = tqfa.attention(q, k, v, mask, return_lse=True)
    with torch.no_grad():
        got = custom_op.attention(q, k, v, mask, return_lse=True)
    custom_op.attention(q, k, v, mask)  # grad mode on, but nothing requires grad
    assert calls == [] and all(torch.equal(g, e) for g, e in zip(got, expected, strict=True))

    custom_op.attention(q.detach().requires_grad_(), k, v, mask)  # the op records the backward
    with torch.device("cpu"):  # a torch function mode
        custom_op.attention(q, k, v, mask)
    with FakeTensorMode() as fake:  # a dispatch mode (tracers are too)
        custom_op.attention(*(fake.from_tensor(t) for t in (q, k, v, mask)))
    assert len(calls) == 3
    seen = []
    torch.vmap(lambda x: seen.append(custom_op._plain_eager((x,))) or x)(q)  # functorch
    assert seen == [False] and custom_op._plain_eager((q,))


def test_errors():
    q, k, v = torch.randn(3, 1, 2, 5, 8)
    bias = torch.nn.attention.bias.causal_lower_right(5, 5)
    with pytest.raises(TypeError, match="CausalBias"):
        custom_op.attention(q, k, v, bias)
    with pytest.raises(ValueError, match="does not broadcast"):
        custom_op.attention(q, k, v, torch.zeros(3, 5))
    # At trace time the fake implementation raises eager's message (dynamo wraps the ValueError).
    with pytest.raises(Exception, match="does not broadcast"):
        torch.compile(custom_op.attention, fullgraph=True, backend="eager")(q, k, v, torch.zeros(3, 5))
