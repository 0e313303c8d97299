"""Tuning: probe -> family mapping for real device descriptions, the per-family data, selection
(defaults, shared-memory fit, TQFA_TRITON_CONFIG, TQFA_AUTOTUNE) and the compile check's plumbing.

Pure Python on meta tensors: nothing here needs a GPU or the interpreter, except the one compile
test, which compiles a tiny configuration for gfx942 ahead of time (as `tox -e cpu` does for all).
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch

from tqfa.device import target_from_properties
from tqfa.problem import build_problem
from tqfa.triton import backend as triton_backend
from tqfa.triton import compile_check
from tqfa.triton.tuning import (
    AUTOTUNE_ENV,
    CONFIG_ENV,
    FAMILIES,
    INTERPRETER,
    Family,
    KernelConfig,
    Tuning,
    autotune,
    candidates,
    family_of,
    head_bucket,
    head_parts,
    problem_tags,
    select_config,
    target_for_arch,
)
from tqfa.triton.tuning.config import TAGS

K = KernelConfig


def nvidia(name, capability, shared_memory=0):
    return target_from_properties(name=name, is_hip=False, capability=capability, shared_memory=shared_memory)


def amd(name, gcn_arch, shared_memory=65536):
    # ROCm reports a CUDA-style capability that says nothing about the chip: it must be ignored.
    return target_from_properties(name=name, is_hip=True, capability=(9, 4), gcn_arch=gcn_arch,
                                  shared_memory=shared_memory)


DEVICES = [
    (nvidia("NVIDIA A100-SXM4-80GB", (8, 0), 166912), "sm80", "sm80"),
    (nvidia("NVIDIA GeForce RTX 3090", (8, 6), 101376), "sm86", "sm86"),
    (nvidia("NVIDIA GeForce RTX 4090", (8, 9), 101376), "sm89", "sm86"),
    (nvidia("NVIDIA H100 80GB HBM3", (9, 0), 232448), "sm90", "sm90"),
    (nvidia("NVIDIA B200", (10, 0), 232448), "sm100", "nvidia"),
    (nvidia("NVIDIA GeForce RTX 5090", (12, 0), 101376), "sm120", "nvidia"),
    (amd("AMD Instinct MI250X", "gfx90a:sramecc+:xnack-"), "gfx90a", "cdna"),
    (amd("AMD Instinct MI300X", "gfx942:sramecc+:xnack-"), "gfx942", "cdna"),
    (amd("AMD Instinct MI355X", "gfx950:sramecc+:xnack-"), "gfx950", "cdna"),
    (amd("AMD Radeon RX 7900 XTX", "gfx1100"), "gfx1100", "rdna3"),
    (amd("AMD Radeon 8060S", "gfx1151"), "gfx1151", "rdna3"),
    (amd("AMD Radeon RX 9070 XT", "gfx1201"), "gfx1201", "rdna4"),
    (amd("AMD Instinct MI100", "gfx908:sramecc+:xnack-"), "gfx908", "amd"),
]


@pytest.mark.parametrize("target, arch, family", DEVICES, ids=[d[0].name for d in DEVICES])
def test_probe_maps_real_devices_to_their_family(target, arch, family):
    assert target.arch == arch
    assert family_of(target).name == family
    assert target.warp_size == (64 if arch.startswith("gfx9") else 32)


def test_unknown_arch_uses_the_vendors_generic_family_with_one_log_line(caplog):
    from tqfa.triton import tuning

    tuning._log_generic.cache_clear()
    tuning.family_of.cache_clear()
    target = amd("AMD Instinct MI100", "gfx908")
    with caplog.at_level(logging.INFO, logger="tqfa"):
        assert family_of(target).name == family_of(target).name == "amd"
    lines = [r.getMessage() for r in caplog.records if "generic" in r.getMessage()]
    assert lines == [
        "tqfa: no tuning table for AMD Instinct MI100 (gfx908); using the generic amd configurations"]


def test_nvidia_below_sm80_is_refused(monkeypatch):
    t4 = nvidia("Tesla T4", (7, 5), 65536)
    with pytest.raises(ValueError, match=r"needs sm80 or newer, got Tesla T4 \(sm75\)"):
        family_of(t4)
    # The backend refuses it before any selection happens (auto then falls back to chunked).
    monkeypatch.setattr(triton_backend, "_launcher", lambda: SimpleNamespace(INTERPRETED=False))
    monkeypatch.setattr(triton_backend, "probe", lambda device: t4)
    reason = triton_backend._environment_reason(SimpleNamespace(device=torch.device("cuda", 0)))
    assert "compute capability 8.0 or newer, got sm75" in reason


def test_listed_archs_map_back_to_their_family():
    for family in FAMILIES.values():
        for arch in family.archs:
            assert family_of(target_for_arch(arch)) is family, (family.name, arch)


# ---------------------------------------------------------------------------------------------
# The data


KEYS = [(bucket, elt) for bucket in (64, 128, 256) for elt in (2, 4)]


@pytest.mark.parametrize("family", FAMILIES.values(), ids=list(FAMILIES))
def test_every_space_is_small_and_holds_its_defaults(family):
    # TQFA_AUTOTUNE=1 times a key's candidates (the space pruned by the family's rule): at most
    # a dozen per key; the space holds every key's, so it may hold a few more in all.
    for kind, tuning in family.kinds.items():
        assert 1 <= len(tuning.space) <= 16, (family.name, kind)
        assert all(len(tuning.candidates(key)) <= 12 for key in KEYS), (family.name, kind)
        assert len(set(tuning.space)) == len(tuning.space), "duplicate configurations"
        assert all(key in tuning.defaults for key in KEYS), "every bucket and element size has a default"
        for key, config in tuning.defaults.items():
            assert key[:2] in KEYS and key[2:] in ((), *((tag,) for tag in TAGS)), key
            assert config in tuning.space, (key, config)
            assert config in tuning.candidates(key[:2]), f"{key}: the pruning rule drops the default {config}"


@pytest.mark.parametrize("family", FAMILIES.values(), ids=list(FAMILIES))
def test_vendor_specific_fields_stay_with_their_vendor(family):
    for tuning in family.kinds.values():
        for config in tuning.space:
            if family.vendor == "nvidia":
                assert not config.amd_options(), config
            if family.vendor == "amd":
                assert config.num_stages == 1 and not config.tma, config


def test_no_table_is_a_copy_of_another():
    tables = {}
    for family in FAMILIES.values():
        for kind, tuning in family.kinds.items():
            tables.setdefault(id(tuning), (family.name, kind, tuning))
    seen = {}
    for name, kind, tuning in tables.values():
        fingerprint = (kind, tuple(sorted(tuning.defaults.items(), key=str)))
        assert fingerprint not in seen, f"{name} duplicates {seen[fingerprint]}: share the object instead"
        seen[fingerprint] = name


# ---------------------------------------------------------------------------------------------
# Selection


def meta_problem(head_dim=128, dtype=torch.bfloat16, q_len=4096, kv_len=4096, mask=False, causal=True):
    q = torch.empty(2, 32, q_len, head_dim, dtype=dtype, device="meta")
    k = torch.empty(2, 8, kv_len, head_dim, dtype=dtype, device="meta")
    # mask: True for a mask per query row ([B, 1, Sq, Skv]), "keys" for key padding ([B, 1, 1, Skv]).
    rows = 1 if mask == "keys" else q_len
    attn_mask = torch.empty(2, 1, rows, kv_len, dtype=dtype, device="meta") if mask else None
    return build_problem(q, k, k, attn_mask, is_causal=causal)


H100 = DEVICES[3][0]
WS_D128 = K(128, 128, 4, 2, tma=True, ws=True, pingpong=True, persistent=True, snake=True)
WS_D64 = K(128, 256, 4, 2, tma=True, ws=True, persistent=True)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    monkeypatch.delenv(AUTOTUNE_ENV, raising=False)
    autotune.cache_clear()


def test_sm90_keeps_the_measured_defaults():
    # d128 without a mask, 16-bit, in layouts the copy engine reads: the Gluon ws kernel.
    assert select_config(meta_problem(128), H100) == WS_D128
    assert select_config(meta_problem(128, causal=False), H100) == select_config(meta_problem(128), H100)
    # ...and kernel.py where a layout rules descriptors out (a D stride of 2).
    wide = torch.empty(2, 32, 4096, 256, dtype=torch.bfloat16, device="meta")[..., ::2]
    assert problem_tags(build_problem(wide, wide[:, :8], wide[:, :8], None, True)) == ()
    assert select_config(build_problem(wide, wide[:, :8], wide[:, :8], None, True), H100) == (
        K(128, 64, 4, 2, tma=True, halves=2))
    assert select_config(meta_problem(112), H100) == K(128, 64, 4, 2, tma=True, halves=2)  # 128
    assert select_config(meta_problem(96), H100) == K(128, 64, 4, 3, tma=True, halves=2)  # split: 64 + 32
    # d64: the ws kernel without causality; kernel.py's two row blocks when causal.
    assert select_config(meta_problem(64, causal=False), H100) == WS_D64
    assert select_config(meta_problem(64), H100) == K(128, 64, 4, 3, tma=True, halves=2)
    # Short calls the ws kernel serves take its rows too; the others keep the "short" row. Short
    # causal d128 calls: the ws kernel without turns.
    short = dict(q_len=512, kv_len=512)
    assert select_config(meta_problem(128, causal=False, **short), H100) == WS_D128
    assert select_config(meta_problem(128, **short), H100) == replace(WS_D128, pingpong=False,
                                                                      snake=False)
    assert select_config(meta_problem(128, q_len=1024, kv_len=1025), H100) == WS_D128
    assert select_config(meta_problem(64, causal=False, **short), H100) == WS_D64
    assert select_config(meta_problem(112, **short), H100) == K(64, 64, 4, 3, tma=True)
    assert select_config(meta_problem(64, dtype=torch.float32), H100) == K(64, 32, 8, 2)
    assert select_config(meta_problem(64, mask=True), H100) == K(128, 64, 8, 3)  # no spills
    assert select_config(meta_problem(128, mask=True), H100) == K(128, 64, 8, 3, tma=True)
    assert select_config(meta_problem(128, mask="keys"), H100) == K(128, 64, 4, 2, tma=True, halves=2)
    assert select_config(meta_problem(64, mask="keys"), H100) == K(128, 64, 8, 3)  # no "keymask" row


@pytest.mark.parametrize("device", [d for d, _, family in DEVICES if family != "sm90"],
                         ids=[arch for _, arch, family in DEVICES if family != "sm90"])
def test_only_a_table_with_dense_rows_pays_for_their_layout_check(device, monkeypatch):
    # serves_dense checks three tensors' layouts on every prefill call; the families without a
    # "dense" row must not run it. sm90 still does, and picks its rows by it.
    from tqfa.triton import tuning

    assert FAMILIES["sm90"].kinds["prefill"].has_dense_rows
    assert not FAMILIES[tuning.family_of(device).name].kinds["prefill"].has_dense_rows
    monkeypatch.setattr(tuning, "serves_dense", None)  # a call raises TypeError
    problem = meta_problem(128)
    select_config(problem, device)
    with pytest.raises(TypeError):
        select_config(problem, H100)


def test_tags_pick_rows_in_order_of_precedence():
    short = dict(q_len=1024, kv_len=1000)
    assert problem_tags(meta_problem(96, mask=True, **short)) == ("masked", "short", "split")
    assert problem_tags(meta_problem(128, mask="keys")) == ("keymask", "masked")
    assert problem_tags(meta_problem(128, q_len=1, kv_len=1000, mask=True)) == ("keymask", "masked", "short")
    assert problem_tags(meta_problem(128, q_len=1024, kv_len=1025)) == ("dense-causal", "dense")
    assert problem_tags(meta_problem(128, q_len=1024, kv_len=1000, causal=False)) == ("dense", "short")
    assert problem_tags(meta_problem(128, q_len=1024, kv_len=1025), "decode") == ()
    assert problem_tags(meta_problem(128, dtype=torch.float32, q_len=1024, kv_len=1025)) == ()
    assert problem_tags(meta_problem(96, q_len=1024, kv_len=1025)) == ("split",)
    assert problem_tags(meta_problem(64, **short)) == ("dense-causal-short", "dense-causal", "dense",
                                                       "short")
    assert select_config(meta_problem(128, causal=False, **short), H100) == WS_D128  # dense before short
    assert select_config(meta_problem(96, **short), H100) == K(64, 64, 4, 3, tma=True)  # short before split
    assert select_config(meta_problem(128, mask=True, **short), H100) == K(128, 64, 8, 3, tma=True)
    # d64 causal: kernel.py at 4k ("dense-causal"), the ws kernel without turns when short.
    assert select_config(meta_problem(64, **short), H100) == K(128, 128, 4, 2, tma=True, ws=True,
                                                               persistent=True)
    assert select_config(meta_problem(64, q_len=1024, kv_len=1025), H100) == K(128, 64, 4, 3, tma=True,
                                                                               halves=2)


def test_amd_configs_carry_amd_options():
    config = select_config(meta_problem(64), DEVICES[7][0])
    assert config.amd_options() == {"waves_per_eu": 2, "matrix_instr_nonkdim": 16}
    assert str(config) == "128x64 w4 s1 wpe2 mfma16"


def test_generic_family_fits_its_data_to_the_device():
    # sm120 runs sm80's table; d256's 64x64 at 2 stages needs more than 99 KB by the estimate.
    rtx5090 = DEVICES[5][0]
    assert select_config(meta_problem(256), rtx5090) == K(64, 64, 8, 1)
    # A named family is compile-checked on its archs: no estimate for the device it was checked on...
    assert select_config(meta_problem(256), DEVICES[0][0]) == K(64, 64, 8, 2)
    # ...but a device reporting less shared memory than that gets fitted.
    small_a100 = nvidia("NVIDIA A100 (capped)", (8, 0), 101376)
    assert select_config(meta_problem(256), small_a100) == K(64, 64, 8, 1)


def test_interpreter_has_one_config():
    assert select_config(meta_problem(64, torch.float16), INTERPRETER) == K(32, 32, 4, 1)
    assert candidates(meta_problem(256, torch.float32), INTERPRETER) == [K(32, 32, 4, 1)]


def test_unknown_kind_is_a_clear_error():
    with pytest.raises(ValueError, match=r"no 'backward' tuning for the sm90 family; it has \["):
        select_config(meta_problem(), H100, kind="backward")


def test_head_parts_pad_less_than_the_next_power_of_two():
    parts = {d: head_parts(d) for d in (16, 24, 40, 48, 64, 80, 96, 112, 128, 192, 256)}
    assert parts == {16: (16, 0), 24: (32, 0), 40: (32, 16), 48: (32, 16), 64: (64, 0),
                     80: (64, 16), 96: (64, 32), 112: (128, 0), 128: (128, 0), 192: (128, 64),
                     256: (256, 0)}


def test_head_buckets():
    buckets = [head_bucket(d) for d in (16, 40, 64, 65, 96, 128, 129, 256)]
    assert buckets == [64, 64, 64, 128, 128, 128, 256, 256]


# ---------------------------------------------------------------------------------------------
# TQFA_TRITON_CONFIG


def test_override_replaces_the_selection(monkeypatch):
    monkeypatch.setenv(CONFIG_ENV, '{"block_m": 64, "block_n": 32, "num_warps": 4, "num_stages": 2}')
    assert select_config(meta_problem(), H100) == K(64, 32, 4, 2)
    monkeypatch.setenv(CONFIG_ENV, '{"block_m": 64, "block_n": 64, "num_warps": 4, "num_stages": 1, '
                                   '"waves_per_eu": 1, "matrix_instr_nonkdim": 32}')
    assert select_config(meta_problem(), DEVICES[7][0]) == K(64, 64, 4, 1, 1, 32)
    monkeypatch.setenv(CONFIG_ENV, "  ")
    assert select_config(meta_problem(), H100) == WS_D128
    # ws is an sm90 kernel: on any other target the override is refused.
    monkeypatch.setenv(CONFIG_ENV, _json(block_m=128, tma=True, ws=True))
    assert select_config(meta_problem(), H100) == K(128, 64, 4, 2, tma=True, ws=True)
    with pytest.raises(ValueError, match="ws is a kernel for NVIDIA sm90"):
        select_config(meta_problem(), DEVICES[0][0])


def _json(**fields):
    base = {"block_m": 64, "block_n": 64, "num_warps": 4, "num_stages": 2}
    return json.dumps({**base, **fields})


BAD_OVERRIDES = [
    ("{block_m: 64}", r"is not JSON \(Expecting property name.*expected e\.g\. \{\"block_m\": 128"),
    ("[64, 64, 4, 2]", r"must be a JSON object"),
    (_json(stages=3), r"unknown key\(s\) \['stages'\]; the keys are \['block_m', 'block_n'"),
    ('{"block_m": 64, "block_n": 64}', r"missing key\(s\) \['num_warps', 'num_stages'\]"),
    (_json(block_m="64"), r"block_m must be an integer, got '64'"),
    (_json(num_warps=True), r"num_warps must be an integer, got True"),
    (_json(block_m=96), r"block_m must be a power of two >= 16, got 96"),
    (_json(block_n=8), r"block_n must be a power of two >= 16, got 8"),
    (_json(num_warps=3), r"num_warps must be a power of two <= 16"),
    (_json(num_stages=0), r"num_stages must be an integer from 1 to 8"),
    (_json(tma=1), r"tma must be true or false"),
    (_json(warp_specialize=True), r"unknown key\(s\) \['warp_specialize'\]"),
    (_json(num_stages=1, waves_per_eu=2),
     r"\['waves_per_eu'\] apply to AMD GPUs only, this is NVIDIA H100 80GB HBM3 \(sm90\)"),
]


@pytest.mark.parametrize("value, message", BAD_OVERRIDES, ids=[b[0][:40] for b in BAD_OVERRIDES])
def test_invalid_override_is_a_clear_error(monkeypatch, value, message):
    monkeypatch.setenv(CONFIG_ENV, value)
    with pytest.raises(ValueError, match=rf"^TQFA_TRITON_CONFIG=.*{message}"):
        select_config(meta_problem(), H100)


def test_override_checks_the_vendor(monkeypatch):
    monkeypatch.setenv(CONFIG_ENV, _json(num_stages=1, matrix_instr_nonkdim=8))
    with pytest.raises(ValueError, match=r"matrix_instr_nonkdim must be 0, 16 or 32, got 8"):
        select_config(meta_problem(), DEVICES[7][0])
    monkeypatch.setenv(CONFIG_ENV, _json(num_stages=1, tma=True))
    with pytest.raises(ValueError, match=r"tma needs an NVIDIA sm90\+ GPU, this is AMD Instinct MI300X"):
        select_config(meta_problem(), DEVICES[7][0])


# ---------------------------------------------------------------------------------------------
# TQFA_AUTOTUNE


def test_length_buckets_are_powers_of_two():
    buckets = [autotune.length_bucket(n) for n in (0, 1, 2, 3, 17, 1000, 1024, 1025)]
    assert buckets == [1, 1, 2, 4, 32, 1024, 1024, 2048]
    assert autotune.length_bucket(10**7) == autotune.MAX_LENGTH_BUCKET


def test_autotune_key_buckets_lengths():
    key = autotune.tuning_key(meta_problem(q_len=1000, kv_len=3000), "sm90", "prefill")
    assert 1000 not in key and 3000 not in key and key[-2:] == (1024, 4096)
    assert key == autotune.tuning_key(meta_problem(q_len=999, kv_len=2049), "sm90", "prefill")
    assert key != autotune.tuning_key(meta_problem(q_len=1025, kv_len=3000), "sm90", "prefill")
    assert key != autotune.tuning_key(meta_problem(q_len=1000, kv_len=3000, mask=True), "sm90", "prefill")


def test_autotune_times_the_space_once_per_bucket(monkeypatch):
    timed = []

    def fake_timer(problem):
        def time_ms(config):
            timed.append(config)
            if config.block_n == 128:
                raise RuntimeError("out of resources")  # skipped, not fatal
            return 1.0 / (config.block_m * config.num_stages)
        return time_ms

    monkeypatch.setattr(autotune, "prefill_timer", fake_timer)
    monkeypatch.setenv(AUTOTUNE_ENV, "1")
    space = candidates(meta_problem(q_len=1000), H100)
    best = select_config(meta_problem(q_len=1000), H100)
    runnable = [c for c in space if c.block_n != 128]
    assert timed == space and best == max(runnable, key=lambda c: c.block_m * c.num_stages)
    assert select_config(meta_problem(q_len=1023), H100) == best  # same bucket: no timing
    assert len(timed) == len(space)
    select_config(meta_problem(q_len=1025), H100)  # next bucket: timed again
    assert len(timed) == 2 * len(space)


def test_autotune_falls_back_to_the_default_when_nothing_runs():
    def broken(config):
        raise RuntimeError("no device")

    assert autotune.tune("k", [K(64, 64, 4, 2)], K(16, 16, 4, 1), broken) == K(16, 16, 4, 1)


def test_autotune_is_skipped_by_the_interpreter_and_validated(monkeypatch):
    monkeypatch.setenv(AUTOTUNE_ENV, "1")
    assert select_config(meta_problem(64, torch.float16), INTERPRETER) == K(32, 32, 4, 1)
    monkeypatch.setenv(AUTOTUNE_ENV, "yes")
    with pytest.raises(ValueError, match=r"TQFA_AUTOTUNE must be 0 or 1, got 'yes'"):
        select_config(meta_problem(), H100)


# ---------------------------------------------------------------------------------------------
# The compile check and `info`


def test_quick_compile_set_covers_every_family_once():
    jobs = compile_check.jobs(compile_check.select_families(None), quick=True)
    assert {job.family for job in jobs} == {name for name, f in FAMILIES.items() if f.archs}
    assert all(job.default and job.arch == list(FAMILIES[job.family].archs)[0] for job in jobs)
    assert {(j.dtype, j.head_dim, j.variant) for j in jobs if j.family == "sm90"} == {
        *(("bf16", d, v) for d in (64, 128, 256) for v in ("plain", "masked")),
        *(("bf16", d, "split") for d in (48, 96, 192)), ("bf16", 64, "short"), ("bf16", 128, "short"),
        ("bf16", 128, "keymask"), ("bf16", 64, "dense"), ("bf16", 128, "dense"),
        *(("fp32", d, "plain") for d in (64, 128, 256))}
    masked = {j.config for j in jobs
              if j.family == "sm90" and j.kind == "prefill" and j.head_dim == 128 and j.variant == "masked"}
    assert masked == {K(128, 64, 8, 3, tma=True)}
    # The Gluon kernel's rows: "dense" (not causal) at d64 and d128, the plain meta problem
    # (bf16, causal, contiguous) at d128 ("dense-causal" keeps kernel.py at d64), and the short
    # causal one at both ("dense-causal-short").
    sm90 = {(j.head_dim, j.variant): j.config for j in jobs
            if j.family == "sm90" and j.kind == "prefill" and j.dtype == "bf16"}
    assert sm90[64, "dense"].ws and sm90[128, "dense"].ws and sm90[128, "plain"].ws
    assert sm90[64, "short"].ws and sm90[128, "short"].ws and not sm90[64, "plain"].ws
    assert not sm90[64, "plain"].ws and not sm90[256, "plain"].ws


def test_compile_check_targets():
    assert [f.name for f in compile_check.select_families("cdna")] == ["cdna"]
    (gfx950,) = compile_check.select_families("gfx950")
    assert gfx950.name == "cdna" and dict(gfx950.archs) == {"gfx950": 163840}
    with pytest.raises(SystemExit, match=r"unknown target 'sm75'; targets: .*gfx942.*sm90"):
        compile_check.select_families("sm75")


def test_compile_check_fails_a_config_over_its_limit():
    pytest.importorskip("triton")
    config = K(32, 32, 4, 1)
    tiny = Family("tiny", "amd", claims=("gfx942",), archs={"gfx942": 1024},
                  kinds={"prefill": Tuning(defaults={(64, 2): config}, space=(config,))})
    out = io.StringIO()
    assert not compile_check.run([tiny], quick=True, workers=1, out=out)
    table = out.getvalue()
    assert "tiny        gfx942   prefill bf16   64 plain   32x32 w4 s1 *" in table
    assert "FAIL shared memory 4096 > 1024" in table and "3 failed" in table  # plain, masked, split


def test_info_shows_family_and_config(monkeypatch):
    from tqfa import diagnostics

    text = diagnostics.tuning_info(torch.device("cpu"), "gfx942", (2, 32, 8, 4096, 4096, 128), "bf16",
                                   causal=True, mask=True)
    assert text.splitlines() == [
        "triton target: gfx942 -> tuning family cdna",
        "  b2-h32:8-q4096-k4096-d128-bfloat16-causal_top_left-mask_bfloat16: "
        "default 128x64 w8 s1 wpe2 mfma16",
    ]
    monkeypatch.setenv(AUTOTUNE_ENV, "1")
    text = diagnostics.tuning_info(torch.device("cpu"), "sm120", (1, 8, 8, 100, 100, 64))
    assert "(generic: no table of its own)" in text and "TQFA_AUTOTUNE=1 times these" in text
    assert "the triton kernel needs sm80 or newer" in diagnostics.tuning_info(torch.device("cpu"), "sm75")
