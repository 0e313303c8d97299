"""FlashAttention forward for sm90 in Gluon, warp-specialised (KernelConfig.ws).

Why a second kernel: Triton 3.6 compiles kernel.py's tile loop for all warps of a program, which
wait on the same loads at barriers (3 BAR.SYNC per K/V tile in its SASS), so one warpgroup's
softmax overlaps the other's matrix products only as far as ptxas interleaves them. Here, as in
FlashAttention-3, the roles are separate partitions that meet only at mbarriers:
- a producer warp issues the TMA copies: Q once, then K and V tiles into a ring of STAGES slots;
- two consumer warpgroups of 64 query rows each run QK, the online softmax and PV on their own
  rows, each at its own pace, and hand a slot back when both have read it.
PINGPONG (FlashAttention-3's warpgroup ping-pong): the consumers take turns to issue their QK
products (two mbarriers pass the turn), so that one's softmax runs while the other's products do.
FlashAttention-3's other overlap, within a warpgroup (tile j's QK product issued with tile j-1's PV
product, tile j's softmax under the latter), was an option here and lost on the H200 (518 against
557 TFLOP/s at d128, 519 against 569 with PINGPONG: benchmarks/results/h200-2026-12-01c.md).

Semantics are kernel.py's for the calls it serves (gluon_launch.ws_strides): 16-bit Q, K, V of
head dim 64 or 128 that the copy engine can read, no mask, causal (either alignment) or not, a positive scale.
Scores are in log2 units; a row that has seen no visible key keeps m_i = -inf (its max is used as
0) and gets output 0 and LSE -inf. Keys past Skv in the last tile (zero-filled by the copy engine)
and keys past the causal limit get score -inf.
"""

from __future__ import annotations

from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import (
    fence_async_shared,
    mbarrier,
    tma,
    warpgroup_mma,
    warpgroup_mma_wait,
)

# The TMA copies' names: async_load / async_store from Triton 3.7 on (3.9 keeps the old names as
# stubs that raise), async_copy_global_to_shared / async_copy_shared_to_global in 3.6.
_tma_load = getattr(tma, "async_load", None) or tma.async_copy_global_to_shared
_tma_store = getattr(tma, "async_store", None) or tma.async_copy_shared_to_global
# The barrier of a partition's warps: gl.barrier from 3.7 on, gl.thread_barrier in 3.6.
_barrier = getattr(gl, "barrier", None) or gl.thread_barrier


@gluon.jit
def _work(w, num_m, num_work, q_heads, kv_len, causal_offset, BLOCK_N: gl.constexpr,
          CAUSAL: gl.constexpr, ORDER: gl.constexpr):
    """Work item w: 128 query rows of one (batch, q head); (b, h, bh, first row, K/V tiles).
    ORDER "heads": query blocks run fastest, so that the programs running together share K/V in
    L2, and reversed when causal: each head's longest rows first.
    "longest" and "snake" (persistent causal grids): query blocks slowest, the longest first
    across all heads. The programs take items p, p + G, ...: with query blocks fastest, a grid
    that is a multiple of the blocks per head would give each program items of one length (at Sq
    512 on 132 SMs, a quarter of them the longest). Groups of heads sized for L2 (longest first
    within a group) lost on the H200 (h200-2026-12-01d.md).
    "snake": each round of G items runs in the other direction from the round before. Taken in
    one direction, program 0 gets the longest item of every round (at 16k, B1 Hq32: about 4
    tiles more per round than program G - 1, 3% of the call). The snake gained 2-8% at 4k and
    16k and lost 7-10% at Sq 512 and 4-6% at 1024, where both orders give each program the same
    tiles within one (h200-2026-12-01f.md); the tables choose per row."""
    if ORDER == "heads":
        bh = w // num_m
        block = w % num_m
        if CAUSAL:
            block = num_m - 1 - block
    else:
        if ORDER == "snake":
            g = gl.num_programs(0)
            start = w - w % g
            if (w // g) % 2 == 1:
                w = start + gl.minimum(num_work - start, g) - 1 - w % g
        heads = num_work // num_m
        bh = w % heads
        block = num_m - 1 - w // heads
    m0 = block * 128
    key_end = kv_len
    if CAUSAL:
        key_end = gl.minimum(key_end, gl.maximum(m0 + 128 + causal_offset, 0))
    return bh // q_heads, bh % q_heads, bh, m0, gl.cdiv(key_end, BLOCK_N)


@gluon.jit
def _producer(q_desc, k_desc, v_desc, q_smem, k_smem, v_smem, q_ready, q_empty, kv_ready, kv_empty,
              num_m, num_work, q_heads, group, kv_len, causal_offset, BLOCK_N: gl.constexpr,
              STAGES: gl.constexpr, CAUSAL: gl.constexpr, ORDER: gl.constexpr):
    kv_bytes: gl.constexpr = k_desc.block_type.nbytes + v_desc.block_type.nbytes
    Q_BUFFERS: gl.constexpr = q_smem.shape[0] // 2
    it = 0  # work items of this program so far
    kv = 0  # K/V tiles loaded so far: tile kv goes to slot kv % STAGES
    for w in range(gl.program_id(0), num_work, gl.num_programs(0)):
        b, h, bh, m0, n_tiles = _work(w, num_m, num_work, q_heads, kv_len, causal_offset,
                                      BLOCK_N, CAUSAL, ORDER)
        # A fresh barrier counts its (never run) previous phase as complete: the first work
        # item, the first pass through the Q buffers and through the ring do not wait.
        qb = it % Q_BUFFERS
        mbarrier.wait(q_empty.index(qb), ((it // Q_BUFFERS) & 1) ^ 1)
        ready = q_ready.index(qb)
        mbarrier.expect(ready, 2 * q_desc.block_type.nbytes)
        _tma_load(q_desc, [b, h, m0, 0], ready, q_smem.index(2 * qb))
        _tma_load(q_desc, [b, h, m0 + 64, 0], ready, q_smem.index(2 * qb + 1))
        for j in range(n_tiles):
            slot = kv % STAGES
            mbarrier.wait(kv_empty.index(slot), ((kv // STAGES) & 1) ^ 1)
            bar = kv_ready.index(slot)
            mbarrier.expect(bar, kv_bytes)
            _tma_load(k_desc, [b, h // group, j * BLOCK_N, 0], bar, k_smem.index(slot))
            _tma_load(v_desc, [b, h // group, j * BLOCK_N, 0], bar, v_smem.index(slot))
            kv += 1
        it += 1


@gluon.jit
def _scores(q, k_smem, slot, s_layout: gl.constexpr, BLOCK_N: gl.constexpr, HEAD_DIM: gl.constexpr):
    """Issue the QK product of one tile (async): [ROWS, BLOCK_N] fp32 in s_layout."""
    k = k_smem.index(slot).reshape([BLOCK_N, HEAD_DIM]).permute((1, 0))
    return warpgroup_mma(q, k, gl.zeros([64, BLOCK_N], gl.float32, s_layout), use_acc=False,
                         is_async=True)


@gluon.jit
def _softmax(s, m_i, l_i, j, key_limit, qk_scale, s_layout: gl.constexpr,
             BLOCK_N: gl.constexpr, MASKED: gl.constexpr):
    """Online softmax of one tile's scores: (p, alpha, m_new, l_new). MASKED: keys at or past
    key_limit[row] (a [ROWS] tensor) get score -inf."""
    if MASKED:
        cols = j * BLOCK_N + gl.arange(0, BLOCK_N, layout=gl.SliceLayout(0, s_layout))
        s = gl.where(cols[None, :] < key_limit[:, None], s, float("-inf"))
    m_new = gl.maximum(m_i, gl.max(s, axis=1) * qk_scale)
    m_use = gl.where(m_new == float("-inf"), 0.0, m_new)
    p = gl.exp2(s * qk_scale - m_use[:, None])
    alpha = gl.exp2(m_i - m_use)
    return p, alpha, m_new, l_i * alpha + gl.sum(p, axis=1)


@gluon.jit
def _take_turn(turn, j, WHICH: gl.constexpr, PINGPONG: gl.constexpr):
    """PINGPONG: wait until the other consumer has issued its products of tile j - 1 (consumer 0
    goes first: the kernel arrives once on its barrier)."""
    if PINGPONG:
        mbarrier.wait(turn.index(WHICH), j & 1)


@gluon.jit
def _pass_turn(turn, WHICH: gl.constexpr, PINGPONG: gl.constexpr):
    if PINGPONG:
        mbarrier.arrive(turn.index(1 - WHICH), count=1)


@gluon.jit
def _consume(q, k_smem, v_smem, kv_ready, kv_empty, turn, acc, m_i, l_i, base, start, stop,
             key_limit, qk_scale, s_layout: gl.constexpr, o_layout: gl.constexpr,
             BLOCK_N: gl.constexpr, HEAD_DIM: gl.constexpr, STAGES: gl.constexpr,
             MASKED: gl.constexpr, WHICH: gl.constexpr, PINGPONG: gl.constexpr):
    """Tiles [start, stop) of one consumer's work item, whose tile 0 is the program's K/V tile
    `base`: QK, softmax, PV; each slot released after its PV.
    PINGPONG: the two consumers issue their tiles' products in turn, so that one's softmax
    runs while the other's products do (FlashAttention-3's warpgroup ping-pong)."""
    dtype: gl.constexpr = k_smem.dtype
    p_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=o_layout, k_width=2)
    o_rows: gl.constexpr = gl.SliceLayout(1, o_layout)
    for j in range(start, stop):
        slot = (base + j) % STAGES
        mbarrier.wait(kv_ready.index(slot), ((base + j) // STAGES) & 1)
        _take_turn(turn, base + j, WHICH, PINGPONG)
        s = _scores(q, k_smem, slot, s_layout, BLOCK_N, HEAD_DIM)
        _pass_turn(turn, WHICH, PINGPONG)
        s = warpgroup_mma_wait(0, deps=[s])
        p, alpha, m_i, l_i = _softmax(s, m_i, l_i, j, key_limit, qk_scale, s_layout,
                                      BLOCK_N, MASKED)
        acc = acc * gl.convert_layout(alpha, o_rows)[:, None]
        pv = gl.convert_layout(p.to(dtype), p_layout)
        v = v_smem.index(slot).reshape([BLOCK_N, HEAD_DIM])
        acc = warpgroup_mma_wait(0, deps=[warpgroup_mma(pv, v, acc, is_async=True)])
        mbarrier.arrive(kv_empty.index(slot), count=1)
    return acc, m_i, l_i


@gluon.jit
def _item(w, q, ready, empty, phase, kv, o_desc, Lse, o_tile, k_smem, v_smem, kv_ready, kv_empty,
          turn, num_m, num_work, q_heads, q_len, kv_len, causal_offset, qk_scale,
          s_layout: gl.constexpr, o_layout: gl.constexpr,
          WHICH: gl.constexpr, BLOCK_N: gl.constexpr, HEAD_DIM: gl.constexpr,
          STAGES: gl.constexpr, CAUSAL: gl.constexpr, PINGPONG: gl.constexpr,
          ORDER: gl.constexpr):
    """Work item w for consumer WHICH, whose Q rows are `q` (a buffer that the barriers `ready`
    and `empty` guard, `ready` in phase `phase`); kv: the K/V tiles taken before it. Returns kv
    after its tiles."""
    b, h, bh, m0, n_tiles = _work(w, num_m, num_work, q_heads, kv_len, causal_offset,
                                  BLOCK_N, CAUSAL, ORDER)
    row0 = m0 + WHICH * 64
    rows = row0 + gl.arange(0, 64, layout=gl.SliceLayout(1, s_layout))
    # Tiles [0, n_plain) need no mask for any row of this consumer: they end at or before Skv
    # and, causal, before the first row's limit. Tiles [n_plain, n_tiles) get the mask.
    n_plain = kv_len // BLOCK_N
    key_limit = gl.full([64], 0, gl.int32, gl.SliceLayout(1, s_layout)) + kv_len
    if CAUSAL:
        n_plain = gl.minimum(n_plain, gl.maximum(row0 + causal_offset + 1, 0) // BLOCK_N)
        key_limit = gl.minimum(key_limit, rows + causal_offset + 1)
    n_plain = gl.minimum(n_plain, n_tiles)
    m_i = gl.full([64], float("-inf"), gl.float32, gl.SliceLayout(1, s_layout))
    l_i = gl.zeros([64], gl.float32, gl.SliceLayout(1, s_layout))
    acc = gl.zeros([64, HEAD_DIM], gl.float32, o_layout)
    mbarrier.wait(ready, phase)
    acc, m_i, l_i = _consume(q, k_smem, v_smem, kv_ready, kv_empty, turn, acc, m_i, l_i, kv,
                             0, n_plain, key_limit, qk_scale, s_layout, o_layout,
                             BLOCK_N, HEAD_DIM, STAGES, False, WHICH, PINGPONG)
    acc, m_i, l_i = _consume(q, k_smem, v_smem, kv_ready, kv_empty, turn, acc, m_i, l_i, kv,
                             n_plain, n_tiles, key_limit, qk_scale, s_layout, o_layout,
                             BLOCK_N, HEAD_DIM, STAGES, True, WHICH, PINGPONG)
    # Every QK product of this item has been waited on: the producer may reuse its Q buffer.
    mbarrier.arrive(empty, count=1)
    seen = l_i > 0.0
    l_safe = gl.where(seen, l_i, 1.0)
    lse = gl.where(seen, (m_i + gl.log2(l_safe)) * 0.6931471805599453, float("-inf"))
    gl.store(Lse + bh.to(gl.int64) * q_len + rows, lse, mask=rows < q_len)
    o_rows: gl.constexpr = gl.SliceLayout(1, o_layout)
    out = (acc / gl.convert_layout(l_safe, o_rows)[:, None]).to(o_tile.dtype)
    tma.store_wait(0)  # the last item's output has left o_tile (its copy ran under this item)
    _barrier()
    o_tile.reshape([64, HEAD_DIM]).store(out)
    fence_async_shared()
    _tma_store(o_desc, [b, h, row0, 0], o_tile)
    return kv + n_tiles


@gluon.jit
def _consumer(o_desc, Lse, q_smem, o_smem, k_smem, v_smem, q_ready, q_empty, kv_ready, kv_empty,
              turn, num_m, num_work, q_heads, q_len, kv_len, causal_offset, qk_scale,
              WHICH: gl.constexpr, BLOCK_N: gl.constexpr, HEAD_DIM: gl.constexpr,
              STAGES: gl.constexpr, CAUSAL: gl.constexpr, PINGPONG: gl.constexpr,
              ORDER: gl.constexpr):
    s_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1],
                                                       instr_shape=[16, BLOCK_N, 16])
    o_layout: gl.constexpr = gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, 1],
                                                       instr_shape=[16, HEAD_DIM, 16])
    Q_BUFFERS: gl.constexpr = q_smem.shape[0] // 2
    o_tile = o_smem.index(WHICH)
    kv = 0
    rounds = 0
    step = gl.num_programs(0)
    # One copy of _item per Q buffer, with the buffer's index static. With the index computed at
    # run time (items alternating buffers), triton 3.6's ptxas (12.8) set the masked loop's Q
    # descriptors on the unmasked loop's path only: an item that skips that loop (causal
    # diagonal, Skv < BLOCK_N) read stale ones, with wrong outputs and illegal addresses on the
    # H200 (benchmarks/results/h200-2026-12-01d.md; benchmarks/ws_sass_check.py finds it).
    for w in range(gl.program_id(0), num_work, Q_BUFFERS * step):
        kv = _item(w, q_smem.index(WHICH).reshape([64, HEAD_DIM]), q_ready.index(0),
                   q_empty.index(0), rounds & 1, kv, o_desc, Lse, o_tile, k_smem, v_smem,
                   kv_ready, kv_empty, turn, num_m, num_work, q_heads, q_len, kv_len,
                   causal_offset, qk_scale, s_layout, o_layout, WHICH, BLOCK_N, HEAD_DIM,
                   STAGES, CAUSAL, PINGPONG, ORDER)
        if Q_BUFFERS == 2:
            if w + step < num_work:
                kv = _item(w + step, q_smem.index(2 + WHICH).reshape([64, HEAD_DIM]),
                           q_ready.index(1), q_empty.index(1), rounds & 1, kv, o_desc, Lse,
                           o_tile, k_smem, v_smem, kv_ready, kv_empty, turn, num_m, num_work,
                           q_heads, q_len, kv_len, causal_offset, qk_scale, s_layout, o_layout,
                           WHICH, BLOCK_N, HEAD_DIM, STAGES, CAUSAL, PINGPONG, ORDER)
        rounds += 1
    tma.store_wait(0)


@gluon.jit(do_not_specialize=["q_len", "kv_len", "causal_offset"])
def attention_fwd_ws_kernel(q_desc, k_desc, v_desc, o_desc, Lse, q_heads, group, q_len, kv_len,
                            causal_offset, num_work, sm_scale, BLOCK_N: gl.constexpr,
                            HEAD_DIM: gl.constexpr, STAGES: gl.constexpr, CAUSAL: gl.constexpr,
                            PINGPONG: gl.constexpr, Q_BUFFERS: gl.constexpr,
                            ORDER: gl.constexpr):
    """Program p serves work items p, p + G, p + 2G, ... of the num_work = cdiv(Sq, 128) * B * Hq
    items (_work), where G is the grid: one item per program, or persistent (G at most the SMs:
    the next item's Q and K/V loads run under the current one's last tiles and its output copy
    under the next one's). Q_BUFFERS (1 or 2): with 2 the next item's Q is loaded into the other
    buffer while the current item's last QK products read theirs. ORDER: see _work."""
    num_m = gl.cdiv(q_len, 128)
    dtype: gl.constexpr = q_desc.dtype
    q_smem = gl.allocate_shared_memory(dtype, [2 * Q_BUFFERS] + q_desc.block_type.shape,
                                       q_desc.layout)
    o_smem = gl.allocate_shared_memory(dtype, [2] + o_desc.block_type.shape, o_desc.layout)
    k_smem = gl.allocate_shared_memory(dtype, [STAGES] + k_desc.block_type.shape, k_desc.layout)
    v_smem = gl.allocate_shared_memory(dtype, [STAGES] + v_desc.block_type.shape, v_desc.layout)
    q_ready = gl.allocate_shared_memory(gl.int64, [Q_BUFFERS, 1], mbarrier.MBarrierLayout())
    q_empty = gl.allocate_shared_memory(gl.int64, [Q_BUFFERS, 1], mbarrier.MBarrierLayout())
    kv_ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    kv_empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    turn = gl.allocate_shared_memory(gl.int64, [2, 1], mbarrier.MBarrierLayout())
    for i in gl.static_range(Q_BUFFERS):
        mbarrier.init(q_ready.index(i), count=1)
        mbarrier.init(q_empty.index(i), count=2)
    mbarrier.init(turn.index(0), count=1)
    mbarrier.init(turn.index(1), count=1)
    for i in gl.static_range(STAGES):
        mbarrier.init(kv_ready.index(i), count=1)
        mbarrier.init(kv_empty.index(i), count=2)
    fence_async_shared()
    if PINGPONG:
        mbarrier.arrive(turn.index(0), count=1)  # consumer 0 issues tile 0 first
    qk_scale = sm_scale * 1.4426950408889634
    gl.warp_specialize([
        (_consumer, (o_desc, Lse, q_smem, o_smem, k_smem, v_smem, q_ready, q_empty, kv_ready,
                     kv_empty, turn, num_m, num_work, q_heads, q_len, kv_len, causal_offset,
                     qk_scale, 0, BLOCK_N, HEAD_DIM, STAGES, CAUSAL, PINGPONG, ORDER)),
        (_consumer, (o_desc, Lse, q_smem, o_smem, k_smem, v_smem, q_ready, q_empty, kv_ready,
                     kv_empty, turn, num_m, num_work, q_heads, q_len, kv_len, causal_offset,
                     qk_scale, 1, BLOCK_N, HEAD_DIM, STAGES, CAUSAL, PINGPONG, ORDER)),
        (_producer, (q_desc, k_desc, v_desc, q_smem, k_smem, v_smem, q_ready, q_empty, kv_ready,
                     kv_empty, num_m, num_work, q_heads, group, kv_len, causal_offset, BLOCK_N,
                     STAGES, CAUSAL, ORDER)),
    ], [4, 1], [240, 24])
