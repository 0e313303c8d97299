"""FlashAttention-2 forward in Triton: jit code only (launch.py computes strides, descriptors and
the grid).

Online softmax. One program owns BLOCK_M query rows of one (batch, q head) and streams the K/V
tiles of its kv head (h // group). Per row it keeps the running max m_i, the running denominator
l_i = sum_j exp(s_ij - m_i) and the unnormalised accumulator acc = sum_j exp(s_ij - m_i) v_j, all
fp32. A new tile with row max m_new rescales both by alpha = exp(m_i - m_new). The epilogue writes
acc / l_i and lse = m_i + log(l_i).

Units: without an additive mask the scores are kept in log2 units, s = qk * (scale * log2 e). In
tiles with scale > 0 (FOLD_SCALE: the row max then commutes with the scaling) p =
exp2(qk * qk_scale - m) is one FMA and one exp2. With an additive mask the scores stay in natural
units, s = qk * scale + mask, and the subtraction comes before the log2 e multiply: HF's finite
mask minimum (finfo(bf16 / fp32).min ~ -3.4e38) times log2 e would overflow fp32 to -inf, turning
"attend with negligible weight" into "not visible" and a fully padded row into zeros where SDPA
returns the uniform average of V. In natural units s stays finite and LSE stays exact.

A row that has seen no visible key has m_i = -inf: the max is replaced by 0 before exp2 (so
-inf - -inf never makes NaN), l_i stays 0 and the epilogue writes 0 and LSE -inf.

Head dim: tl.dot needs power-of-two shapes. A head dim that is not one is split into two parts,
BLOCK_D + BLOCK_D1 columns (96 = 64 + 32, 80 = 64 + 16), each with its own dots and accumulator,
instead of padding it to the next power of two (which wastes a quarter of the MMA work at 96).
BLOCK_D1 = 0: one part; masks on the head dim compile away when HEAD_DIM fills the parts.

Feature flags (launch.py sets them from the problem and the configuration):
- TMA: Q, K and V are read through tensor descriptors ([B, H, S, D], one per head-dim part)
  instead of pointer tensors: the copy engine fetches tiles and zero-fills rows past the sequence
  end, which frees the registers the int64 pointer tiles held and drops all load predicates.
- MASK_ROWS: the mask varies along query rows; without it (key-padding masks, [B, 1, 1, Skv]) one
  [BLOCK_N] vector per tile is read instead of a [BLOCK_M, BLOCK_N] tile of equal rows.
- KV_RANGE (masks without MASK_ROWS): each program first scans its (batch, head)'s mask row for
  the span [first_live, live_end) of keys that are not masked out (bool False, or at most
  mask_lowest: the mask dtype's minimum, HF's padding value) and the first key with a real weight
  (>= mask_lowest / 2). A block whose first row sees such a key gives every key outside the span
  exactly zero weight (its score is at least |minimum| / 2 below the row max), so those tiles are
  skipped. A block without one keeps every key: SDPA averages V over minimum-masked rows. The
  scan reads Skv mask values, against the Skv x D of K and V the program streams.
- BLOCK_RANGE (bool masks with MASK_ROWS, such as HF's causal-and-padding [B, 1, Sq, Skv]): the
  span [first, end) of keys that some row of the program's block sees comes from Spans (computed
  per call by mask_spans.py, per 16 rows and mask head) and the tiles outside it are skipped: a
  hidden key has no weight in a bool mask. The tiles inside the run of keys that every row sees
  are computed without reading the mask.
- HALVES == 2: the program's BLOCK_M rows are two row blocks of BLOCK_M // 2 with their own
  state, which share every K/V tile load; in each tile both blocks' QK products are issued
  before either softmax (FlashAttention-3's overlap of MMA and softmax within a warpgroup,
  expressed as instruction order instead of warp specialisation). Triton 3.6 waits on each QK
  product right after issuing it (wgmma.wait_group 0 in the PTX); the overlap comes from ptxas,
  which schedules part of the first block's softmax ahead of that wait, and the first block's
  PV product, which is not waited on, runs under the second block's softmax.

Specialisation: lengths and causal_offset are never specialised (no compile per length); strides
keep Triton's 1 / multiple-of-16 specialisation, which proves the 16-byte alignment of the tile
loads (launch.py zeroes the strides of size-1 dims, so only a stride that is itself a length, such
as a key-padding mask's Skv, adds variants: at most three).

Grid: one axis, cdiv(Sq, BLOCK_M) * B * Hq programs, query blocks fastest so that neighbouring
programs share K/V in L2, and the q heads of one kv head adjacent (one axis also avoids the 65535
limit of the others). With causal the query blocks run in reverse order: the longest rows start
first and the short ones fill the tail.
"""

import triton
import triton.language as tl

LOG2E = tl.constexpr(1.4426950408889634)
LN2 = tl.constexpr(0.6931471805599453)

# float32's finite minimum: float64 mask values below it are clamped to it (softmax_step).
FP32_MIN = tl.constexpr(-3.4028234663852886e38)

# Mask values per step of the KV_RANGE scan.
RANGE_SCAN = tl.constexpr(1024)

# MASK_KIND values.
NO_MASK = tl.constexpr(0)
BOOL_MASK = tl.constexpr(1)
ADDITIVE_MASK = tl.constexpr(2)


@triton.jit
def _load_described(desc, desc1, b, h, start, ROWS: tl.constexpr, BLOCK_D: tl.constexpr,
                    BLOCK_D1: tl.constexpr):
    """Rows [start, start + ROWS) of head (b, h) through the two head-dim parts' descriptors
    (the second is the first when BLOCK_D1 == 0): the copy engine zero-fills past the ends."""
    x = desc.load([b, h, start, 0]).reshape([ROWS, BLOCK_D])
    x1 = x
    if BLOCK_D1 > 0:
        x1 = desc1.load([b, h, start, BLOCK_D]).reshape([ROWS, BLOCK_D1])
    return x, x1


@triton.jit
def _load_kv(desc, desc1, head, offs, offs1, b, kvh, start_n, cols, kv_len, offs_d, offs_d1,
             stride_n, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr,
             BLOCK_D1: tl.constexpr, BOUNDARY: tl.constexpr, TMA: tl.constexpr):
    """A K or V tile [BLOCK_N, BLOCK_D] and its second head-dim part (itself when BLOCK_D1 == 0).
    Keys past kv_len and columns past HEAD_DIM read as 0."""
    if TMA:
        x, x1 = _load_described(desc, desc1, b, kvh, start_n, BLOCK_N, BLOCK_D, BLOCK_D1)
    else:
        ptrs = head + tl.cast(start_n, tl.int64) * stride_n + offs
        ok = tl.full([BLOCK_N, 1], 1, tl.int1)
        if BOUNDARY:
            ok = (cols < kv_len)[:, None]
        if BOUNDARY or HEAD_DIM < BLOCK_D:
            x = tl.load(ptrs, mask=ok & (offs_d < HEAD_DIM)[None, :], other=0.0)
        else:
            x = tl.load(ptrs)
        x1 = x
        if BLOCK_D1 > 0:
            ptrs1 = head + tl.cast(start_n, tl.int64) * stride_n + offs1
            if BOUNDARY or HEAD_DIM < BLOCK_D + BLOCK_D1:
                x1 = tl.load(ptrs1, mask=ok & (offs_d1 < HEAD_DIM)[None, :], other=0.0)
            else:
                x1 = tl.load(ptrs1)
    return x, x1


@triton.jit
def load_mask_tile(ptrs, cols, kv_len, BOUNDARY: tl.constexpr):
    """The mask values at `ptrs`, [rows, BLOCK_N] or [1, BLOCK_N] (the same for every row);
    keys past kv_len read 0 in BOUNDARY tiles (the decode kernel uses it too)."""
    if BOUNDARY:
        vals = tl.load(ptrs, mask=(cols < kv_len)[None, :], other=0)
    else:
        vals = tl.load(ptrs)
    return vals


@triton.jit
def softmax_step(qk, m_i, mask_val, visible, sm_scale, qk_scale, MASK_KIND: tl.constexpr,
                 FOLD_SCALE: tl.constexpr, BOUNDARY: tl.constexpr):
    """One tile of raw scores qk [rows, BLOCK_N] against the running row max m_i: (p, alpha,
    m_new), p the tile's unnormalised weights and alpha the factor that rescales the running
    state (see Units above; the decode kernel uses it too). mask_val: the tile's mask values, read
    when MASK_KIND != NO_MASK; visible: which keys each row may see, read when BOUNDARY."""
    if MASK_KIND == NO_MASK and FOLD_SCALE:
        # The hot path: visible scores are finite and qk_scale > 0, so the max commutes with
        # the scaling (hidden keys are -inf before it) and the exp2 argument is one FMA.
        if BOUNDARY:
            qk = tl.where(visible, qk, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(qk, 1) * qk_scale)
        m_use = m_new
        if BOUNDARY:  # a row that has seen no key yet still has m = -inf
            m_use = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.math.exp2(tl.fma(qk, qk_scale, -m_use[:, None]))
        alpha = tl.math.exp2(m_i - m_use)
    else:
        if MASK_KIND == ADDITIVE_MASK:
            if mask_val.dtype == tl.float64:
                # float64's finite minimum would round to -inf in fp32: keep it finite (a number,
                # as in SDPA: a row of minima averages V); -inf stays -inf.
                mask_val = tl.where(mask_val == float("-inf"), mask_val, tl.maximum(mask_val, FP32_MIN))
            s = qk * sm_scale + mask_val.to(tl.float32)
        else:
            s = qk * qk_scale
        if MASK_KIND == BOOL_MASK:
            s = tl.where(mask_val != 0, s, float("-inf"))
        if BOUNDARY:
            s = tl.where(visible, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_use = tl.where(m_new == float("-inf"), 0.0, m_new)
        if MASK_KIND == ADDITIVE_MASK:
            p = tl.math.exp2((s - m_use[:, None]) * LOG2E)
            alpha = tl.math.exp2((m_i - m_use) * LOG2E)
        else:
            p = tl.math.exp2(s - m_use[:, None])
            alpha = tl.math.exp2(m_i - m_use)
    return p, alpha, m_new


@triton.jit
def _scores(q, q1, k, k1, BLOCK_D1: tl.constexpr, DOT_PRECISION: tl.constexpr):
    """The raw scores q k^T of one row block and one K tile."""
    qk = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION)
    if BLOCK_D1 > 0:
        qk = tl.dot(q1, tl.trans(k1), qk, input_precision=DOT_PRECISION)
    return qk


@triton.jit
def _fold_scores(
    acc, acc1, l_i, m_i, qk, v, v1, mask_ptrs, cols, col_limit, kv_len, sm_scale, qk_scale,
    BLOCK_D1: tl.constexpr, BOUNDARY: tl.constexpr, CAUSAL: tl.constexpr,
    MASK_KIND: tl.constexpr, FOLD_SCALE: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """Fold one K/V tile, given its raw scores qk, into the running state of one row block (the
    invariant above)."""
    mask_val = 0
    if MASK_KIND != NO_MASK:
        mask_val = load_mask_tile(mask_ptrs, cols, kv_len, BOUNDARY)
    visible = 0
    if BOUNDARY:
        # Keys past a row's limit: per element on the causal diagonal, per column otherwise.
        if CAUSAL:
            visible = cols[None, :] <= col_limit[:, None]
        else:
            visible = (cols < kv_len)[None, :]
    p, alpha, m_new = softmax_step(qk, m_i, mask_val, visible, sm_scale, qk_scale, MASK_KIND,
                                   FOLD_SCALE, BOUNDARY)
    l_i = l_i * alpha + tl.sum(p, 1)
    p = p.to(v.dtype)
    acc = tl.dot(p, v, acc * alpha[:, None], input_precision=DOT_PRECISION)
    if BLOCK_D1 > 0:
        acc1 = tl.dot(p, v1, acc1 * alpha[:, None], input_precision=DOT_PRECISION)
    return acc, acc1, l_i, m_new


@triton.jit
def _attend_tiles(
    acc, acc1, l_i, m_i, q, q1, mask_base, col_limit,
    acc_b, acc1_b, l_b, m_b, q_b, q1_b, mask_base_b, col_limit_b,
    k_desc, k_desc1, v_desc, v_desc1, k_head, v_head, k_offs, k_offs1, v_offs, v_offs1,
    mask_offs, offs_n, offs_d, offs_d1, b, kvh,
    n_start, n_stop, kv_len, sm_scale, qk_scale, stride_kn, stride_vn, stride_mn,
    BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_D1: tl.constexpr,
    HALVES: tl.constexpr, BOUNDARY: tl.constexpr, CAUSAL: tl.constexpr, MASK_KIND: tl.constexpr,
    FOLD_SCALE: tl.constexpr, TMA: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """Stream the KV tiles [n_start, n_stop) through the row block (and, with HALVES == 2, its
    second half: the *_b state, which is passed through untouched otherwise). BOUNDARY tiles may
    hold keys that some rows must not see (causal diagonal, ragged end: key > col_limit of its
    row); the other tiles run without any visibility code."""
    for start_n in tl.range(n_start, n_stop, BLOCK_N):
        cols = start_n + offs_n
        k, k1 = _load_kv(k_desc, k_desc1, k_head, k_offs, k_offs1, b, kvh, start_n, cols, kv_len,
                         offs_d, offs_d1, stride_kn, BLOCK_N, HEAD_DIM, BLOCK_D, BLOCK_D1,
                         BOUNDARY, TMA)
        v, v1 = _load_kv(v_desc, v_desc1, v_head, v_offs, v_offs1, b, kvh, start_n, cols, kv_len,
                         offs_d, offs_d1, stride_vn, BLOCK_N, HEAD_DIM, BLOCK_D, BLOCK_D1,
                         BOUNDARY, TMA)
        mask_step = (tl.cast(start_n, tl.int64) * stride_mn + mask_offs)[None, :]
        # With HALVES == 2 both halves' QK products are issued before either softmax, so that
        # tensor-core work can overlap a softmax (see HALVES above for how much of it does);
        # issued one half after the other, nothing overlapped.
        qk = _scores(q, q1, k, k1, BLOCK_D1, DOT_PRECISION)
        if HALVES == 2:
            qk_b = _scores(q_b, q1_b, k, k1, BLOCK_D1, DOT_PRECISION)
        acc, acc1, l_i, m_i = _fold_scores(
            acc, acc1, l_i, m_i, qk, v, v1, mask_base + mask_step, cols, col_limit, kv_len,
            sm_scale, qk_scale, BLOCK_D1, BOUNDARY, CAUSAL, MASK_KIND, FOLD_SCALE, DOT_PRECISION)
        if HALVES == 2:
            acc_b, acc1_b, l_b, m_b = _fold_scores(
                acc_b, acc1_b, l_b, m_b, qk_b, v, v1, mask_base_b + mask_step, cols, col_limit_b,
                kv_len, sm_scale, qk_scale, BLOCK_D1, BOUNDARY, CAUSAL, MASK_KIND, FOLD_SCALE,
                DOT_PRECISION)
    return acc, acc1, l_i, m_i, acc_b, acc1_b, l_b, m_b


@triton.jit
def _key_range(mask_row, stride_mn, kv_len, mask_lowest, MASK_KIND: tl.constexpr):
    """(first live key, one past the last live key, first key with a real weight) of one mask row
    (see KV_RANGE); kv_len, 0, kv_len where there is none."""
    first_live = kv_len
    live_end = kv_len * 0
    first_strong = kv_len
    for start in tl.range(0, kv_len, RANGE_SCAN):
        cols = start + tl.arange(0, RANGE_SCAN)
        inside = cols < kv_len
        vals = tl.load(mask_row + cols.to(tl.int64) * stride_mn, mask=inside, other=0)
        if MASK_KIND == BOOL_MASK:
            live = inside & (vals != 0)
            strong = live
        else:
            live = inside & (vals.to(tl.float32) > mask_lowest)
            strong = inside & (vals.to(tl.float32) >= mask_lowest * 0.5)
        first_live = tl.minimum(first_live, tl.min(tl.where(live, cols, kv_len)))
        live_end = tl.maximum(live_end, tl.max(tl.where(live, cols + 1, 0)))
        first_strong = tl.minimum(first_strong, tl.min(tl.where(strong, cols, kv_len)))
    return first_live, live_end, first_strong


@triton.jit
def _load_q(Q, q_desc, q_desc1, b, h, b32, h32, start, rows, stride_qb, stride_qh, stride_qm,
            stride_qd, offs_d, offs_d1, ROWS: tl.constexpr, HEAD_DIM: tl.constexpr,
            BLOCK_D: tl.constexpr, BLOCK_D1: tl.constexpr, TMA: tl.constexpr):
    """The Q rows [start, start + ROWS) (`rows`: their indices clamped to Sq - 1) and their
    second head-dim part (itself when BLOCK_D1 == 0)."""
    if TMA:
        q, q1 = _load_described(q_desc, q_desc1, b32, h32, start, ROWS, BLOCK_D, BLOCK_D1)
    else:
        q_rows = Q + b * stride_qb + h * stride_qh + rows[:, None] * stride_qm
        if HEAD_DIM < BLOCK_D:
            q = tl.load(q_rows + offs_d[None, :] * stride_qd, mask=(offs_d < HEAD_DIM)[None, :],
                        other=0.0)
        else:
            q = tl.load(q_rows + offs_d[None, :] * stride_qd)
        q1 = q
        if BLOCK_D1 > 0:
            q1 = tl.load(q_rows + offs_d1[None, :] * stride_qd, mask=(offs_d1 < HEAD_DIM)[None, :],
                         other=0.0)
    return q, q1


@triton.jit
def _store_rows(Out, Lse, acc, acc1, l_i, m_i, offs_m, bh, b, h, q_len, stride_ob, stride_oh,
                stride_om, stride_od, offs_d, offs_d1, HEAD_DIM: tl.constexpr,
                BLOCK_D: tl.constexpr, BLOCK_D1: tl.constexpr, MASK_KIND: tl.constexpr):
    """Epilogue of one row block: rows with no visible key have l_i == 0 and acc == 0."""
    seen = l_i > 0.0
    l_safe = tl.where(seen, l_i, 1.0)
    if MASK_KIND == ADDITIVE_MASK:
        lse = m_i + tl.log(l_safe)
    else:
        lse = (m_i + tl.math.log2(l_safe)) * LN2
    lse = tl.where(seen, lse, float("-inf"))
    row_ok = offs_m < q_len
    tl.store(Lse + bh.to(tl.int64) * q_len + offs_m, lse, mask=row_ok)

    # Pointer stores: the epilogue is a small part of the work, and pointers take any out strides.
    dtype = Out.dtype.element_ty
    o_rows = Out + b * stride_ob + h * stride_oh + offs_m.to(tl.int64)[:, None] * stride_om
    o_ok = row_ok[:, None]
    if HEAD_DIM < BLOCK_D:
        o_ok = o_ok & (offs_d < HEAD_DIM)[None, :]
    tl.store(o_rows + offs_d[None, :] * stride_od, (acc / l_safe[:, None]).to(dtype), mask=o_ok)
    if BLOCK_D1 > 0:
        tl.store(o_rows + offs_d1[None, :] * stride_od, (acc1 / l_safe[:, None]).to(dtype),
                 mask=row_ok[:, None] & (offs_d1 < HEAD_DIM)[None, :])


@triton.jit(do_not_specialize=["q_len", "kv_len", "causal_offset"])
def attention_fwd_kernel(
    Q, K, V, Mask, Out, Lse,
    q_desc, q_desc1, k_desc, k_desc1, v_desc, v_desc1,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_mb, stride_mh, stride_mm, stride_mn,
    stride_ob, stride_oh, stride_om, stride_od,
    q_heads, group, q_len, kv_len, causal_offset, sm_scale, mask_lowest, Spans, span_heads,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HALVES: tl.constexpr,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_D1: tl.constexpr,
    CAUSAL: tl.constexpr, MASK_KIND: tl.constexpr, MASK_ROWS: tl.constexpr,
    KV_RANGE: tl.constexpr, BLOCK_RANGE: tl.constexpr, FOLD_SCALE: tl.constexpr,
    TMA: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """Out [B, Hq, Sq, D] and Lse (contiguous fp32 [B, Hq, Sq]) for one query tile.
    Key j is visible to query i iff j <= i + causal_offset (when CAUSAL) and j < kv_len.
    The *_desc arguments are read with TMA only; mask_lowest with KV_RANGE only; Spans and
    span_heads (1 or Hq) with BLOCK_RANGE only."""
    num_m = tl.cdiv(q_len, BLOCK_M)
    pid = tl.program_id(0)
    bh = pid // num_m
    m_block = pid % num_m
    if CAUSAL:
        m_block = num_m - 1 - m_block
    # int32 indices for the descriptors, int64 before any multiplication by a stride.
    b32 = bh // q_heads
    h32 = bh % q_heads
    kvh32 = h32 // group
    b, h, kvh = b32.to(tl.int64), h32.to(tl.int64), kvh32.to(tl.int64)

    # The block's rows in HALVES parts of BLOCK_M // HALVES rows: offs_m the first, offs_m_b the
    # second (with HALVES == 1 the *_b values only stand in for arguments that are not used).
    start_m = m_block * BLOCK_M
    offs_m = start_m + tl.arange(0, BLOCK_M // HALVES)
    offs_m_b = offs_m + BLOCK_M // HALVES
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    offs_d1 = BLOCK_D + tl.arange(0, BLOCK_D1 if BLOCK_D1 > 0 else 16)
    # Rows past Sq read row Sq - 1 (never stored): the Q and mask loads need no row predicate.
    rows = tl.minimum(offs_m, q_len - 1).to(tl.int64)
    rows_b = tl.minimum(offs_m_b, q_len - 1).to(tl.int64)

    k_head = K + b * stride_kb + kvh * stride_kh
    v_head = V + b * stride_vb + kvh * stride_vh
    offs_n64 = offs_n.to(tl.int64)
    k_offs = offs_n64[:, None] * stride_kn + offs_d[None, :] * stride_kd
    v_offs = offs_n64[:, None] * stride_vn + offs_d[None, :] * stride_vd
    k_offs1 = offs_n64[:, None] * stride_kn + offs_d1[None, :] * stride_kd
    v_offs1 = offs_n64[:, None] * stride_vn + offs_d1[None, :] * stride_vd
    q, q1 = _load_q(Q, q_desc, q_desc1, b, h, b32, h32, start_m, rows, stride_qb, stride_qh,
                    stride_qm, stride_qd, offs_d, offs_d1, BLOCK_M // HALVES, HEAD_DIM, BLOCK_D,
                    BLOCK_D1, TMA)
    mask_base = Mask + b * stride_mb + h * stride_mh
    mask_base_b = mask_base
    if MASK_ROWS:
        mask_base_b = mask_base + rows_b[:, None] * stride_mm
        mask_base = mask_base + rows[:, None] * stride_mm
    mask_offs = offs_n64 * stride_mn

    qk_scale = sm_scale * LOG2E
    m_i = tl.full([BLOCK_M // HALVES], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M // HALVES], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M // HALVES, BLOCK_D], dtype=tl.float32)
    acc1 = tl.zeros([BLOCK_M // HALVES, BLOCK_D1 if BLOCK_D1 > 0 else 16], dtype=tl.float32)

    # Tiles [n_lo, n_full) are visible to every row of this block; [n_full, n_stop) need the
    # per-row limit col_limit; tiles outside [n_lo, n_stop) are visible to no row (or have no
    # weight, KV_RANGE) and are never loaded.
    last_row = tl.minimum(start_m + BLOCK_M, q_len) - 1
    if CAUSAL:
        n_stop = tl.minimum(tl.maximum(last_row + causal_offset + 1, 0), kv_len)
        n_full = tl.minimum(tl.maximum(start_m + causal_offset + 1, 0), kv_len) // BLOCK_N * BLOCK_N
        col_limit = tl.minimum(offs_m + causal_offset, kv_len - 1)
        col_limit_b = tl.minimum(offs_m_b + causal_offset, kv_len - 1)
        first_row_sees = start_m + causal_offset
    else:
        n_stop = kv_len
        n_full = kv_len // BLOCK_N * BLOCK_N
        col_limit = tl.full([BLOCK_M // HALVES], 0, dtype=tl.int32) + (kv_len - 1)
        col_limit_b = col_limit
        first_row_sees = kv_len - 1
    n_lo = 0
    full_stop = n_full
    if KV_RANGE:
        first_live, live_end, first_strong = _key_range(mask_base, stride_mn, kv_len, mask_lowest,
                                                        MASK_KIND)
        anchored = first_strong <= first_row_sees
        n_lo = tl.where(anchored, first_live // BLOCK_N * BLOCK_N, 0)
        n_stop = tl.where(anchored, tl.minimum(n_stop, live_end), n_stop)
        full_stop = tl.minimum(n_full, tl.cdiv(n_stop, BLOCK_N) * BLOCK_N)
    # Tiles [mask_lo, mask_hi) are seen whole by every row of the block (BLOCK_RANGE): no mask.
    mask_lo = full_stop
    mask_hi = full_stop
    if BLOCK_RANGE:
        # The block's spans come in BLOCK_M // 16 parts of 16 rows (mask_spans.PART_ROWS).
        parts = ((b32 * span_heads + h32 % span_heads) * num_m + m_block).to(tl.int64) * (
            BLOCK_M // 16) + tl.arange(0, BLOCK_M // 16)
        n_lo = tl.min(tl.load(Spans + parts * 4)) // BLOCK_N * BLOCK_N
        n_stop = tl.minimum(n_stop, tl.max(tl.load(Spans + parts * 4 + 1)))
        full_stop = tl.minimum(n_full, tl.cdiv(n_stop, BLOCK_N) * BLOCK_N)
        all_first = tl.max(tl.load(Spans + parts * 4 + 2))
        all_end = tl.min(tl.load(Spans + parts * 4 + 3))
        mask_lo = tl.minimum(tl.maximum(tl.cdiv(all_first, BLOCK_N) * BLOCK_N, n_lo), full_stop)
        mask_hi = tl.minimum(tl.maximum(all_end // BLOCK_N * BLOCK_N, mask_lo), full_stop)

    q_b, q1_b = q, q1
    if HALVES == 2:
        q_b, q1_b = _load_q(Q, q_desc, q_desc1, b, h, b32, h32, start_m + BLOCK_M // 2, rows_b,
                            stride_qb, stride_qh, stride_qm, stride_qd, offs_d, offs_d1,
                            BLOCK_M // 2, HEAD_DIM, BLOCK_D, BLOCK_D1, TMA)
    acc_b, acc1_b, l_b, m_b = acc, acc1, l_i, m_i
    # The full tiles (with BLOCK_RANGE: the masked ones before the run every row sees whole, the
    # run without the mask, the masked ones after), then the boundary tiles (the causal diagonal
    # and the ragged end).
    acc, acc1, l_i, m_i, acc_b, acc1_b, l_b, m_b = _attend_tiles(
        acc, acc1, l_i, m_i, q, q1, mask_base, col_limit,
        acc_b, acc1_b, l_b, m_b, q_b, q1_b, mask_base_b, col_limit_b,
        k_desc, k_desc1, v_desc, v_desc1, k_head, v_head, k_offs, k_offs1, v_offs, v_offs1,
        mask_offs, offs_n, offs_d, offs_d1, b32, kvh32, n_lo, mask_lo, kv_len, sm_scale,
        qk_scale, stride_kn, stride_vn, stride_mn, BLOCK_N=BLOCK_N, HEAD_DIM=HEAD_DIM,
        BLOCK_D=BLOCK_D, BLOCK_D1=BLOCK_D1, HALVES=HALVES, BOUNDARY=False, CAUSAL=CAUSAL,
        MASK_KIND=MASK_KIND, FOLD_SCALE=FOLD_SCALE, TMA=TMA, DOT_PRECISION=DOT_PRECISION,
    )
    if BLOCK_RANGE:
        acc, acc1, l_i, m_i, acc_b, acc1_b, l_b, m_b = _attend_tiles(
            acc, acc1, l_i, m_i, q, q1, mask_base, col_limit,
            acc_b, acc1_b, l_b, m_b, q_b, q1_b, mask_base_b, col_limit_b,
            k_desc, k_desc1, v_desc, v_desc1, k_head, v_head, k_offs, k_offs1, v_offs, v_offs1,
            mask_offs, offs_n, offs_d, offs_d1, b32, kvh32, mask_lo, mask_hi, kv_len, sm_scale,
            qk_scale, stride_kn, stride_vn, stride_mn, BLOCK_N=BLOCK_N, HEAD_DIM=HEAD_DIM,
            BLOCK_D=BLOCK_D, BLOCK_D1=BLOCK_D1, HALVES=HALVES, BOUNDARY=False, CAUSAL=CAUSAL,
            MASK_KIND=NO_MASK, FOLD_SCALE=FOLD_SCALE, TMA=TMA, DOT_PRECISION=DOT_PRECISION,
        )
        acc, acc1, l_i, m_i, acc_b, acc1_b, l_b, m_b = _attend_tiles(
            acc, acc1, l_i, m_i, q, q1, mask_base, col_limit,
            acc_b, acc1_b, l_b, m_b, q_b, q1_b, mask_base_b, col_limit_b,
            k_desc, k_desc1, v_desc, v_desc1, k_head, v_head, k_offs, k_offs1, v_offs, v_offs1,
            mask_offs, offs_n, offs_d, offs_d1, b32, kvh32, mask_hi, full_stop, kv_len, sm_scale,
            qk_scale, stride_kn, stride_vn, stride_mn, BLOCK_N=BLOCK_N, HEAD_DIM=HEAD_DIM,
            BLOCK_D=BLOCK_D, BLOCK_D1=BLOCK_D1, HALVES=HALVES, BOUNDARY=False, CAUSAL=CAUSAL,
            MASK_KIND=MASK_KIND, FOLD_SCALE=FOLD_SCALE, TMA=TMA, DOT_PRECISION=DOT_PRECISION,
        )
    acc, acc1, l_i, m_i, acc_b, acc1_b, l_b, m_b = _attend_tiles(
        acc, acc1, l_i, m_i, q, q1, mask_base, col_limit,
        acc_b, acc1_b, l_b, m_b, q_b, q1_b, mask_base_b, col_limit_b,
        k_desc, k_desc1, v_desc, v_desc1, k_head, v_head, k_offs, k_offs1, v_offs, v_offs1,
        mask_offs, offs_n, offs_d, offs_d1, b32, kvh32, tl.maximum(n_full, n_lo), n_stop, kv_len,
        sm_scale, qk_scale, stride_kn, stride_vn, stride_mn, BLOCK_N=BLOCK_N, HEAD_DIM=HEAD_DIM,
        BLOCK_D=BLOCK_D, BLOCK_D1=BLOCK_D1, HALVES=HALVES, BOUNDARY=True, CAUSAL=CAUSAL,
        MASK_KIND=MASK_KIND, FOLD_SCALE=FOLD_SCALE, TMA=TMA, DOT_PRECISION=DOT_PRECISION,
    )

    _store_rows(Out, Lse, acc, acc1, l_i, m_i, offs_m, bh, b, h, q_len, stride_ob, stride_oh,
                stride_om, stride_od, offs_d, offs_d1, HEAD_DIM, BLOCK_D, BLOCK_D1, MASK_KIND)
    if HALVES == 2:
        _store_rows(Out, Lse, acc_b, acc1_b, l_b, m_b, offs_m_b, bh, b, h, q_len, stride_ob,
                    stride_oh, stride_om, stride_od, offs_d, offs_d1, HEAD_DIM, BLOCK_D, BLOCK_D1,
                    MASK_KIND)
