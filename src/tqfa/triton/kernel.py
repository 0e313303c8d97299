"""FlashAttention-2 forward in Triton: jit code only (launch.py computes strides and the grid).

Online softmax. One program owns BLOCK_M query rows of one (batch, q head) and streams the K/V
tiles of its kv head (h // group). Per row it keeps the running max m_i, the running denominator
l_i = sum_j exp(s_ij - m_i) and the unnormalised accumulator acc = sum_j exp(s_ij - m_i) v_j, all
fp32. A new tile with row max m_new rescales both by alpha = exp(m_i - m_new). The epilogue writes
acc / l_i and lse = m_i + log(l_i).

Units: without an additive mask the scores are kept in log2 units, s = qk * (scale * log2 e). In
full tiles with scale >= 0 (FOLD_SCALE: the row max then commutes with the scaling) p =
exp2(qk * qk_scale - m) is one FMA and one exp2. With an additive mask the scores stay in natural
units, s = qk * scale + mask, and the subtraction comes before the log2 e multiply: HF's finite
mask minimum (finfo(bf16 / fp32).min ~ -3.4e38) times log2 e would overflow fp32 to -inf, turning
"attend with negligible weight" into "not visible" and a fully padded row into zeros where SDPA
returns the uniform average of V. In natural units s stays finite and LSE stays exact.

A row that has seen no visible key has m_i = -inf: the max is replaced by 0 before exp2 (so
-inf - -inf never makes NaN), l_i stays 0 and the epilogue writes 0 and LSE -inf.

Specialisation: lengths and causal_offset are never specialised (no compile per length); strides
keep Triton's 1 / multiple-of-16 specialisation, which proves the 16-byte alignment of the tile
loads (launch.py zeroes the strides of size-1 dims, so only a stride that is itself a length, such
as a key-padding mask's Skv, adds variants: at most three). Masks on the head dim compile away
when it is a power of two (HEAD_DIM == BLOCK_D).

Grid: one axis, cdiv(Sq, BLOCK_M) * B * Hq programs, query blocks fastest so that neighbouring
programs share K/V in L2 (one axis also avoids the 65535 limit of the others). With causal the
query blocks run in reverse order: the longest rows start first and the short ones fill the tail.
"""

import triton
import triton.language as tl

LOG2E = tl.constexpr(1.4426950408889634)
LN2 = tl.constexpr(0.6931471805599453)

# MASK_KIND values.
NO_MASK = tl.constexpr(0)
BOOL_MASK = tl.constexpr(1)
ADDITIVE_MASK = tl.constexpr(2)


@triton.jit
def _attend_tiles(
    acc, l_i, m_i, q,
    k_head, v_head, mask_rows, k_offs, v_offs, mask_offs, offs_n, offs_d,
    col_limit, n_start, n_stop, kv_len, sm_scale, qk_scale,
    stride_kn, stride_vn, stride_mn,
    BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr,
    BOUNDARY: tl.constexpr, MASK_KIND: tl.constexpr, FOLD_SCALE: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """Stream the KV tiles [n_start, n_stop). BOUNDARY tiles may hold keys that some rows must not
    see (causal diagonal, ragged end: key > col_limit of its row); the other tiles run without any
    visibility code."""
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

        if MASK_KIND != NO_MASK:
            mask_ptrs = mask_rows[:, None] + (start * stride_mn + mask_offs)[None, :]
            if BOUNDARY:
                mask_val = tl.load(mask_ptrs, mask=(cols < kv_len)[None, :], other=0)
            else:
                mask_val = tl.load(mask_ptrs)

        if MASK_KIND == NO_MASK and not BOUNDARY and FOLD_SCALE:
            # The hot path: every score is finite and qk_scale >= 0, so the max commutes with the
            # scaling and the exp2 argument is one FMA.
            m_new = tl.maximum(m_i, tl.max(qk, 1) * qk_scale)
            p = tl.math.exp2(tl.fma(qk, qk_scale, -m_new[:, None]))
            alpha = tl.math.exp2(m_i - m_new)
        else:
            if MASK_KIND == ADDITIVE_MASK:
                s = qk * sm_scale + mask_val.to(tl.float32)
            else:
                s = qk * qk_scale
            if MASK_KIND == BOOL_MASK:
                s = tl.where(mask_val != 0, s, float("-inf"))
            if BOUNDARY:
                s = tl.where(cols[None, :] <= col_limit[:, None], s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, 1))
            m_use = tl.where(m_new == float("-inf"), 0.0, m_new)
            if MASK_KIND == ADDITIVE_MASK:
                p = tl.math.exp2((s - m_use[:, None]) * LOG2E)
                alpha = tl.math.exp2((m_i - m_use) * LOG2E)
            else:
                p = tl.math.exp2(s - m_use[:, None])
                alpha = tl.math.exp2(m_i - m_use)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None]
        acc = tl.dot(p.to(v.dtype), v, acc, input_precision=DOT_PRECISION)
        m_i = m_new
    return acc, l_i, m_i


@triton.jit(do_not_specialize=["q_len", "kv_len", "causal_offset"])
def attention_fwd_kernel(
    Q, K, V, Mask, Out, Lse,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_mb, stride_mh, stride_mm, stride_mn,
    stride_ob, stride_oh, stride_om, stride_od,
    q_heads, group, q_len, kv_len, causal_offset, sm_scale,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr,
    CAUSAL: tl.constexpr, MASK_KIND: tl.constexpr, FOLD_SCALE: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """Out [B, Hq, Sq, D] and Lse (contiguous fp32 [B, Hq, Sq]) for one query tile.
    Key j is visible to query i iff j <= i + causal_offset (when CAUSAL) and j < kv_len."""
    num_m = tl.cdiv(q_len, BLOCK_M)
    pid = tl.program_id(0)
    bh = pid // num_m
    m_block = pid % num_m
    if CAUSAL:
        m_block = num_m - 1 - m_block
    b = (bh // q_heads).to(tl.int64)
    h = bh % q_heads
    kvh = (h // group).to(tl.int64)
    h = h.to(tl.int64)

    start_m = m_block * BLOCK_M
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    # Rows past Sq read row Sq - 1 (never stored): the Q and mask loads need no row predicate.
    rows = tl.minimum(offs_m, q_len - 1).to(tl.int64)
    d_ok = (offs_d < HEAD_DIM)[None, :]

    q_ptrs = Q + b * stride_qb + h * stride_qh + rows[:, None] * stride_qm + offs_d[None, :] * stride_qd
    if HEAD_DIM == BLOCK_D:
        q = tl.load(q_ptrs)
    else:
        q = tl.load(q_ptrs, mask=d_ok, other=0.0)

    k_head = K + b * stride_kb + kvh * stride_kh
    v_head = V + b * stride_vb + kvh * stride_vh
    offs_n64 = offs_n.to(tl.int64)
    k_offs = offs_n64[:, None] * stride_kn + offs_d[None, :] * stride_kd
    v_offs = offs_n64[:, None] * stride_vn + offs_d[None, :] * stride_vd
    mask_rows = Mask + b * stride_mb + h * stride_mh + rows * stride_mm
    mask_offs = offs_n64 * stride_mn

    qk_scale = sm_scale * LOG2E
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)

    # Tiles [0, n_full) are visible to every row of this block; [n_full, n_stop) need the per-row
    # limit col_limit; tiles past n_stop are visible to no row and are never loaded.
    last_row = tl.minimum(start_m + BLOCK_M, q_len) - 1
    if CAUSAL:
        n_stop = tl.minimum(tl.maximum(last_row + causal_offset + 1, 0), kv_len)
        n_full = tl.minimum(tl.maximum(start_m + causal_offset + 1, 0), kv_len) // BLOCK_N * BLOCK_N
        col_limit = tl.minimum(offs_m + causal_offset, kv_len - 1)
    else:
        n_stop = kv_len
        n_full = kv_len // BLOCK_N * BLOCK_N
        col_limit = tl.full([BLOCK_M], 0, dtype=tl.int32) + (kv_len - 1)

    acc, l_i, m_i = _attend_tiles(
        acc, l_i, m_i, q, k_head, v_head, mask_rows, k_offs, v_offs, mask_offs, offs_n, offs_d,
        col_limit, 0, n_full, kv_len, sm_scale, qk_scale, stride_kn, stride_vn, stride_mn,
        BLOCK_N=BLOCK_N, HEAD_DIM=HEAD_DIM, BLOCK_D=BLOCK_D, BOUNDARY=False,
        MASK_KIND=MASK_KIND, FOLD_SCALE=FOLD_SCALE, DOT_PRECISION=DOT_PRECISION,
    )
    acc, l_i, m_i = _attend_tiles(
        acc, l_i, m_i, q, k_head, v_head, mask_rows, k_offs, v_offs, mask_offs, offs_n, offs_d,
        col_limit, n_full, n_stop, kv_len, sm_scale, qk_scale, stride_kn, stride_vn, stride_mn,
        BLOCK_N=BLOCK_N, HEAD_DIM=HEAD_DIM, BLOCK_D=BLOCK_D, BOUNDARY=True,
        MASK_KIND=MASK_KIND, FOLD_SCALE=FOLD_SCALE, DOT_PRECISION=DOT_PRECISION,
    )

    # Epilogue: rows with no visible key have l_i == 0 and acc == 0.
    seen = l_i > 0.0
    l_safe = tl.where(seen, l_i, 1.0)
    out = acc / l_safe[:, None]
    if MASK_KIND == ADDITIVE_MASK:
        lse = m_i + tl.log(l_safe)
    else:
        lse = (m_i + tl.math.log2(l_safe)) * LN2
    lse = tl.where(seen, lse, float("-inf"))

    row_ok = offs_m < q_len
    o_ptrs = (Out + b * stride_ob + h * stride_oh + offs_m.to(tl.int64)[:, None] * stride_om
              + offs_d[None, :] * stride_od)
    o_ok = row_ok[:, None]
    if HEAD_DIM != BLOCK_D:
        o_ok = o_ok & d_ok
    tl.store(o_ptrs, out.to(Out.dtype.element_ty), mask=o_ok)
    tl.store(Lse + bh.to(tl.int64) * q_len + offs_m, lse, mask=row_ok)
