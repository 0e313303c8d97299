"""Split-KV attention for short queries (decode): jit code only (decode_launch.py plans the grid).

Packing. All q heads of one kv head and all Sq queries form the rows of one tile: packed row
r = i * group + g is query i of q head kvh * group + g. K/V tiles are then read once per kv head
instead of once per q head, and the dots have group * Sq rows (padded to BLOCK_M >= 16) instead of
Sq. Rows past group * Sq repeat the last real row (no load predicate) and are never stored.

Split. The keys [0, n_stop) are cut into num_splits ranges of split_len keys (a multiple of
BLOCK_N) so that B * Hkv small problems still fill every SM. Each program runs FlashAttention-2's
online softmax over its range: per row the running max m_i, l_i = sum_j exp(s_ij - m_i) and the
unnormalised acc = sum_j exp(s_ij - m_i) v_j, all fp32, a new tile rescaling both by
exp(m_i - m_new). With one split the program writes out = acc / l_i and LSE directly (SPLIT off).
Otherwise it writes acc, m_i (natural units) and l_i, and decode_merge_kernel combines the splits:
M = max_s m_s, w_s = exp(m_s - M), out = sum_s w_s acc_s / sum_s w_s l_s, lse = M + log(sum w_s l_s).

Why (m, l) and not one LSE per split: under HF's finite minimum a fully padded row has
m_s = finfo.min, and m_s + log(l_s) rounds back to finfo.min, losing the key count of the split;
the merge would then average the splits' averages instead of all keys (SDPA's uniform mean of V).
A split that sees no key of a row has m_s = -inf, l_s = 0, acc_s = 0: its weight is exactly 0 and
it cannot poison the merge; a row no split sees keeps M = -inf and gets 0 and LSE -inf.

Units, masks and empty rows follow kernel.py (the prefill kernel): log2 units without an additive
mask, natural units (subtraction before the log2 e multiply) with one, so HF's finfo.min never
overflows; a key-padding mask ([B, 1, 1, Skv], the same for every row of a program) is loaded as
one vector per tile (KEY_MASK).

Grid: one axis, B * Hkv * num_m * num_splits programs, splits fastest. Lengths, causal_offset,
split_len and num_splits are runtime values: no compile per length.
"""

import triton
import triton.language as tl

# Units, mask kinds and the softmax step are kernel.py's (the prefill kernel).
from .kernel import ADDITIVE_MASK, LN2, LOG2E, NO_MASK, load_mask_tile, softmax_step


@triton.jit
def _split_tiles(
    acc, l_i, m_i, q,
    k_head, v_head, mask_rows, mask_key, k_offs, v_offs, mask_offs, offs_n, offs_d,
    col_limit, n_start, n_stop, kv_len, sm_scale, qk_scale,
    stride_kn, stride_vn, stride_mn,
    BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr,
    BOUNDARY: tl.constexpr, MASK_KIND: tl.constexpr, KEY_MASK: tl.constexpr,
    FOLD_SCALE: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """Stream the KV tiles [n_start, n_stop). BOUNDARY tiles may hold keys past kv_len or past a
    row's causal limit col_limit; the others run without any visibility code."""
    for start_n in range(n_start, n_stop, BLOCK_N):
        start = tl.cast(start_n, tl.int64)
        cols = start_n + offs_n
        if BOUNDARY:
            kv_ok = (cols < kv_len)[:, None]
            if HEAD_DIM != BLOCK_D:
                kv_ok = kv_ok & (offs_d < HEAD_DIM)[None, :]
            k = tl.load(k_head + start * stride_kn + k_offs, mask=kv_ok, other=0.0)
            v = tl.load(v_head + start * stride_vn + v_offs, mask=kv_ok, other=0.0)
        elif HEAD_DIM != BLOCK_D:
            d_ok = (offs_d < HEAD_DIM)[None, :]
            k = tl.load(k_head + start * stride_kn + k_offs, mask=d_ok, other=0.0)
            v = tl.load(v_head + start * stride_vn + v_offs, mask=d_ok, other=0.0)
        else:
            k = tl.load(k_head + start * stride_kn + k_offs)
            v = tl.load(v_head + start * stride_vn + v_offs)
        qk = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION)

        mask_val = 0
        if MASK_KIND != NO_MASK:
            if KEY_MASK:  # one [1, BLOCK_N] vector for every row
                mask_ptrs = (mask_key + start * stride_mn + mask_offs)[None, :]
            else:
                mask_ptrs = mask_rows[:, None] + (start * stride_mn + mask_offs)[None, :]
            mask_val = load_mask_tile(mask_ptrs, cols, kv_len, BOUNDARY)

        visible = 0
        if BOUNDARY:
            visible = cols[None, :] <= col_limit[:, None]
        p, alpha, m_new = softmax_step(qk, m_i, mask_val, visible, sm_scale, qk_scale, MASK_KIND,
                                       FOLD_SCALE, BOUNDARY)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None]
        acc = tl.dot(p.to(v.dtype), v, acc, input_precision=DOT_PRECISION)
        m_i = m_new
    return acc, l_i, m_i


@triton.jit(do_not_specialize=["q_len", "kv_len", "causal_offset", "split_len", "num_splits"])
def decode_split_kernel(
    Q, K, V, Mask, Out, Stats,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_mb, stride_mh, stride_mm, stride_mn,
    stride_ob, stride_oh, stride_om, stride_od,
    kv_heads, group, q_len, kv_len, causal_offset, split_len, num_splits, sm_scale,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr,
    CAUSAL: tl.constexpr, MASK_KIND: tl.constexpr, KEY_MASK: tl.constexpr,
    FOLD_SCALE: tl.constexpr, SPLIT: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """One split of one packed row block. SPLIT: Out is fp32 [B * Hq * Sq, num_splits, HEAD_DIM]
    (acc) and Stats fp32 [B * Hq * Sq, num_splits, 2] (m natural, l). Otherwise Out is the output
    (strided [B, Hq, Sq, D]) and Stats the LSE (contiguous fp32 [B, Hq, Sq])."""
    rows_total = group * q_len
    num_m = tl.cdiv(rows_total, BLOCK_M)
    pid = tl.program_id(0)
    split = pid % num_splits
    rest = pid // num_splits
    m_block = rest % num_m
    bkv = rest // num_m
    b = (bkv // kv_heads).to(tl.int64)
    kvh = bkv % kv_heads

    start_m = m_block * BLOCK_M
    offs_m = start_m + tl.arange(0, BLOCK_M)
    rows = tl.minimum(offs_m, rows_total - 1)
    qi = rows // group
    h = (kvh * group + rows % group).to(tl.int64)
    qi64 = qi.to(tl.int64)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = (offs_d < HEAD_DIM)[None, :]

    q_ptrs = (Q + b * stride_qb + h[:, None] * stride_qh + qi64[:, None] * stride_qm
              + offs_d[None, :] * stride_qd)
    if HEAD_DIM == BLOCK_D:
        q = tl.load(q_ptrs)
    else:
        q = tl.load(q_ptrs, mask=d_ok, other=0.0)

    kvh64 = kvh.to(tl.int64)
    k_head = K + b * stride_kb + kvh64 * stride_kh
    v_head = V + b * stride_vb + kvh64 * stride_vh
    offs_n64 = offs_n.to(tl.int64)
    k_offs = offs_n64[:, None] * stride_kn + offs_d[None, :] * stride_kd
    v_offs = offs_n64[:, None] * stride_vn + offs_d[None, :] * stride_vd
    mask_key = Mask + b * stride_mb
    mask_rows = mask_key + h * stride_mh + qi64 * stride_mm
    mask_offs = offs_n64 * stride_mn

    qk_scale = sm_scale * LOG2E
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)

    # Keys [0, n_full) are visible to every row of the block, [n_full, n_stop) need the per-row
    # limit; this split owns [lo, hi) of them (lo and n_full are multiples of BLOCK_N).
    last_qi = (tl.minimum(start_m + BLOCK_M, rows_total) - 1) // group
    if CAUSAL:
        n_stop = tl.minimum(tl.maximum(last_qi + causal_offset + 1, 0), kv_len)
        first_qi = start_m // group
        n_full = tl.minimum(tl.maximum(first_qi + causal_offset + 1, 0), kv_len) // BLOCK_N * BLOCK_N
        col_limit = tl.minimum(qi + causal_offset, kv_len - 1)
    else:
        n_stop = kv_len
        n_full = kv_len // BLOCK_N * BLOCK_N
        col_limit = tl.full([BLOCK_M], 0, dtype=tl.int32) + (kv_len - 1)
    lo = split * split_len
    hi = tl.minimum(lo + split_len, n_stop)

    acc, l_i, m_i = _split_tiles(
        acc, l_i, m_i, q, k_head, v_head, mask_rows, mask_key, k_offs, v_offs, mask_offs, offs_n,
        offs_d, col_limit, lo, tl.minimum(hi, n_full), kv_len, sm_scale, qk_scale,
        stride_kn, stride_vn, stride_mn,
        BLOCK_N=BLOCK_N, HEAD_DIM=HEAD_DIM, BLOCK_D=BLOCK_D, BOUNDARY=False, MASK_KIND=MASK_KIND,
        KEY_MASK=KEY_MASK, FOLD_SCALE=FOLD_SCALE, DOT_PRECISION=DOT_PRECISION,
    )
    acc, l_i, m_i = _split_tiles(
        acc, l_i, m_i, q, k_head, v_head, mask_rows, mask_key, k_offs, v_offs, mask_offs, offs_n,
        offs_d, col_limit, tl.maximum(lo, n_full), hi, kv_len, sm_scale, qk_scale,
        stride_kn, stride_vn, stride_mn,
        BLOCK_N=BLOCK_N, HEAD_DIM=HEAD_DIM, BLOCK_D=BLOCK_D, BOUNDARY=True, MASK_KIND=MASK_KIND,
        KEY_MASK=KEY_MASK, FOLD_SCALE=FOLD_SCALE, DOT_PRECISION=DOT_PRECISION,
    )

    row_ok = offs_m < rows_total
    o_ok = row_ok[:, None]
    if HEAD_DIM != BLOCK_D:
        o_ok = o_ok & d_ok
    flat_row = (b * (kv_heads * group) + h) * q_len + qi64  # (b, h, i) in [B, Hq, Sq]
    if MASK_KIND != ADDITIVE_MASK:
        m_i = m_i * LN2  # log2 -> natural units (-inf stays -inf)
    if SPLIT:
        part = flat_row * num_splits + split
        o_ptrs = Out + part[:, None] * HEAD_DIM + offs_d[None, :]
        tl.store(o_ptrs, acc, mask=o_ok)
        tl.store(Stats + part * 2, m_i, mask=row_ok)
        tl.store(Stats + part * 2 + 1, l_i, mask=row_ok)
    else:
        # Rows with no visible key have l_i == 0 and acc == 0: out 0, LSE -inf.
        seen = l_i > 0.0
        l_safe = tl.where(seen, l_i, 1.0)
        lse = tl.where(seen, m_i + tl.log(l_safe), float("-inf"))
        o_ptrs = (Out + b * stride_ob + h[:, None] * stride_oh + qi64[:, None] * stride_om
                  + offs_d[None, :] * stride_od)
        tl.store(o_ptrs, (acc / l_safe[:, None]).to(Out.dtype.element_ty), mask=o_ok)
        tl.store(Stats + flat_row, lse, mask=row_ok)


@triton.jit(do_not_specialize=["q_heads", "q_len", "num_splits"])
def decode_merge_kernel(
    Part, Stats, Out, Lse,
    stride_ob, stride_oh, stride_om, stride_od,
    q_heads, q_len, num_splits,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_S: tl.constexpr,
):
    """Out[b, h, i, d-block] and Lse[b, h, i] from the splits of one row (layout: the split
    kernel's). Grid: (B * Hq * Sq, cdiv(HEAD_DIM, BLOCK_D)). The splits are read BLOCK_S at a
    time, so one compiled kernel serves any split count."""
    row = tl.program_id(0).to(tl.int64)
    offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    d_ok = offs_d < HEAD_DIM
    offs_s = tl.arange(0, BLOCK_S)
    first = row * num_splits

    m_max = tl.full([BLOCK_S], float("-inf"), dtype=tl.float32)
    for s0 in range(0, num_splits, BLOCK_S):
        s_ok = s0 + offs_s < num_splits
        m_max = tl.maximum(m_max, tl.load(Stats + (first + s0 + offs_s) * 2, mask=s_ok,
                                          other=float("-inf")))
    m_all = tl.max(m_max, 0)
    m_use = tl.where(m_all == float("-inf"), 0.0, m_all)

    num = tl.zeros([BLOCK_D], dtype=tl.float32)
    den = tl.zeros([BLOCK_S], dtype=tl.float32)
    for s0 in range(0, num_splits, BLOCK_S):
        s_ok = s0 + offs_s < num_splits
        part = first + s0 + offs_s
        m_s = tl.load(Stats + part * 2, mask=s_ok, other=float("-inf"))
        l_s = tl.load(Stats + part * 2 + 1, mask=s_ok, other=0.0)
        w = tl.math.exp2((m_s - m_use) * LOG2E)  # 0 for splits that saw no key of this row
        acc = tl.load(Part + part[:, None] * HEAD_DIM + offs_d[None, :],
                      mask=s_ok[:, None] & d_ok[None, :], other=0.0)
        num += tl.sum(w[:, None] * acc, 0)
        den += w * l_s
    total = tl.sum(den, 0)
    seen = total > 0.0
    total_safe = tl.where(seen, total, 1.0)

    i = row % q_len
    bh = row // q_len
    o_ptrs = Out + (bh // q_heads) * stride_ob + (bh % q_heads) * stride_oh + i * stride_om
    tl.store(o_ptrs + offs_d * stride_od, (num / total_safe).to(Out.dtype.element_ty), mask=d_ok)
    if tl.program_id(1) == 0:
        tl.store(Lse + row, tl.where(seen, m_all + tl.log(total_safe), float("-inf")))
