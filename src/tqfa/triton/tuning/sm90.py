"""NVIDIA sm90 (H100, H200, GH200): 227 KB of shared memory per block, wgmma on warpgroups of
4 warps.

The 16-bit defaults up to d128 are MEASURED: first on an H100 (benchmarks/results/
h100-triton-kernel.md, b2-h32:8 at 4k, bf16: 128x128 w8 s3 beats 128x64 w8 s3 by 15%, causal
12%, for head dims 65-128 and loses by 20% at d64), then on an H200 (benchmarks/results/
h200-2026-11-30.md, every row of the prefill table side by side in one run):
- d128: TMA descriptors on 128x128 w8 s3 gain 7% (513 vs 476 TFLOP/s non-causal, 458 vs 422
  causal 4k, 527 vs 493 causal 16k) since K and V are loaded at the top of the tile loop (1-3%
  before); two row blocks per program (256x64 w8 s3 h2) 509, 429, 495. Since 9d00dd4 (both
  blocks' QK products issued first) 256x64 w8 s3 TMA h2 beats 128x128 w8 s3 TMA by 2.5-3%
  non-causal and loses 6-10% causal (h200-2026-11-30-halves.md, runs 2, 3, 5). Two row blocks
  of 64 in one warpgroup (128x64 w4 s2 TMA h2, 97 KB: two programs per SM) beat 128x128 w8 s3
  TMA non-causal in all six runs that timed both (GPU time 513-526 against 491-516; halves.md
  runs 2, 3, 5 and h200-2026-11-30-tiles.md runs 2-4) and causal in four of six (449-461 against
  437-464 at 4k, 508-529 against 505-533 at 16k): the default since tiles.md run 2. It spills 24
  bytes (40 causal) under Triton 3.6, in the timed runs too; without descriptors (a layout TMA
  cannot read) it runs at 477-481 non-causal, where 128x128 w8 s3 ran at 476.
- "dense" (16-bit, d64 or d128, no mask, layouts TMA reads; short calls too): gluon_sm90.py's
  warp-specialised kernel (h200-2026-12-01c.md), a producer warp and two consumer warpgroups of
  64 rows. d128: the warpgroups take turns to issue their products (128x128 w4 s2 ws pp): 569
  against 516 for kernel.py's 128x64 w4 s2 TMA h2 (527 as a variant) non-causal and 493 against
  458 causal at 4k (run 2; cuDNN 589 and 510); without the turns 557 and 481 (runs 1, 2), with
  FlashAttention-3's overlap within a warpgroup 518 and 462 (run 2). From the public call (run
  3): 559 (cuDNN 588), causal 491 (511), causal 16k 574 (572; kernel.py's 525). A persistent
  grid: 558 against 554, causal 480 against 487, 16k 550 against 572 (run 4).
  d64: 256 keys per tile, 457 against 421 for kernel.py's 128x64 w4 s3 TMA h2 and 444 for
  cuDNN (run 3, with the turns); 128 keys per tile lost (392-393). The kernel loops over work
  items since (one per program unless persistent): the 256-key tile spills 24 bytes under
  Triton 3.6 (8 under 3.9) and ran at 423 with the turns, 441 persistent with them, 457
  persistent without (run 4): the default (449 against cuDNN's 440 in run 5).
  Persistent programs since keep two Q buffers when no item's tiles all take the mask (the d64
  default's non-causal calls) and, causal, take the longest items first across all heads
  (gluon_launch.ws_arguments; h200-2026-12-01d.md). d128 persistent with turns against the
  default: 566-568 against 560-563 non-causal at 4k (runs 4, 5), 510 against 491 causal at 4k
  and 556 against 566 at 16k (run 4); with the longest first within head groups sized for L2,
  459 against 498 and 565 against 589 (run 5). Not the default: one run for, one against. On
  the short rows it gains in GPU time (497 against 371-391 for kernel.py's 64x64 at q512, 532-545
  against 423-464 at q1024, causal 265 against 266 and 377 against 353), but its launch cost
  207 us of host time against kernel.py's 69 on a short call (run 6).
  Since h200-2026-12-01e.md: the ws launch goes through fast_launch (82 us of host time for a
  causal S1100 call against 133 before and 67 for kernel.py's, run 2); every persistent program
  keeps two Q buffers (one copy of the item loop per buffer); a persistent causal grid's rounds
  alternate direction (the snake; since h200-2026-12-01f.md a configuration option). "dense"
  comes before "short", and d128's row is persistent with the turns.
  Per call (bf16, config entries): q512 467 against 368-373 for kernel.py's (cuDNN 511), q1024
  534 against 445-455 (581), causal q1024 356 against 314-342 (391), 4k 582 against 562 for the
  non-persistent kernel (617), causal 4k 535 against 497 (518); causal q512 229 against 251 for
  kernel.py's 64x64 (305) and causal 16k 539 against 572 (559; GPU time 555 against 561) lose
  (run 3). Without the
  alternating rounds causal q512 and q1024 ran at 245 and 378, 4k at 525 and 16k at 549 (run 3).
  "dense-causal": d64 causal calls keep kernel.py's two row blocks: the 256-key tile ran at 315-
  318 against 379-380 for 128x64 w4 s3 TMA h2 at 4k, 154-160 against 230-232 at q1024 (runs 2, 3).
  "dense-causal-short" (d128 and d64): the persistent ws kernel without turns and without the
  snake (h200-2026-12-01f.md, GPU time, two runs of each tree in one call). At d128 the snake
  lost 7-10% and 4-6% on the short causal rows (q512 266 against 293-296 without it, q1024
  391-394 against 412-414) and gained 2-8% at 4k causal (513-515 against 491-504) and 16k
  (564-566 against 523-540); without the turns, q512 293-296 against 277-280 with them, q1024
  412-414 against 396-401 (h200-2026-12-01e.md, runs 1-3, found both the same way). The public
  call then ran q512 causal at 294 (cuDNN 316) and q1024 causal at 418 (395), against 259 and
  386 in h200-2026-12-01e.md's run 4 (f.md, run 3). At d64 (128-key tiles) against kernel.py's
  128x64 w4 s3 TMA h2 (f.md, run 4, two runs of each table): B8 q1024 causal 265 against
  246-247 (cuDNN 292-293), B16 q512 causal 187-188 against 177 (219-220). At 4k causal it
  loses (350-351 against 368), and three stages read 273 and 194 on the short rows, 341 at 4k
  (one run).
- d64: two row blocks of 64 in one warpgroup with TMA (128x64 w4 s3 h2, 66 KB; 174 registers
  under Triton 3.6: two programs per SM, and three under a 168-register cap gained nothing,
  halves.md run 4) 435, 433, 426, 434 against 412, 418, 412, 418 for 128x64 w8 s3 in four runs;
  with a mask it spills (compile check), so masked calls keep 128x64 w8 s3 (not timed masked).
  Nothing else gained in h200-2026-11-30-tiles.md (GPU time, run 2): 128x64 w4 s4 h2 413,
  256x64 w8 s3 h2 401, 64x64 w4 s3 384, 128x32 w4 s3 h2 361, 128x128 w8 s2 h2 205, against 415;
  exp2 on the FMA units (a polynomial) for one or both blocks lost 11% and 25% (run 1). Nor did
  128-key tiles (h200-2026-11-30-qregs.md): 64x128 w4 s2 408-415 against 413-418 in four runs,
  128x128 w4 s2 394, 128x128 w8 s3 340; nor Q in registers for the QK products (within 1%), nor
  per-column row sums (+2% in one run, nothing per call), nor the next tile's QK products issued
  before the current softmax (h200-2026-12-01.md: 364-407 against 416-420; every row lost), nor
  a rescale only when a row max grows past 8 log2 units (h200-2026-12-01b.md: 305-384 against
  420; its block-wide decision costs barriers), nor a persistent grid with the tile loop
  flattened (slower on every row it served, 294 against 390 at q512, and wrong as compiled).
- "split" (d96 = 64 + 32 and the like): 128x64 w4 s3 (98 KB: two programs per SM, one warpgroup
  each) 459 against 377 for 128x128 w8 s3, 451 with TMA; without descriptors the tile spills 24
  bytes under Triton 3.9 (compile check), with them none. Since both row blocks' QK products are
  issued before either softmax (9d00dd4), two row blocks of 64 (h2) gain 3.5% in GPU time and 9%
  per call (h200-2026-11-30-halves.md, run 2: 468 against 452, 500 against 458; 224 registers,
  no spill).
- "short" (Sq, Skv <= 1024; measured at d128): 64x64 w4 s3 beats 128x128 w8 s3 by 23% (causal b8 q512), 18%
  (causal b4 q1024), 14% and 11% (non-causal): more programs, less waste on the diagonal; at 4k
  it loses 3-7%. With TMA it gains 8-14% more in GPU time within each run (390-393, 463-475,
  263-268 and 358-361 against 351-354, 425-434, 233-236 and 318-320 in the four runs of
  h200-2026-11-30-launch.md that timed both). Since fast_launch keeps each variant's tensor
  maps, a launch with descriptors costs 2-9 us more than one with pointers, and its arguments
  13-16 us more: timed per call (attention_forward, do_bench) these rows are faster with TMA
  too (365-369 against 331-336 at q512).
- with a key-padding mask 128x128 s3 and 128x64 s3 were within 1%. With TMA (h200-2026-11-30-
  launch.md, run 4) 128x64 w8 s3 gains 4% on the key-padding row (448 against 431) and 3% on
  HF's causal-and-padding bool mask (309 against 299); 128x128 w8 s3 with TMA gains 9% on the
  key-padding row (469) but a row-varying mask's tiles take it past shared memory (262 KB).
- "keymask" (a mask that is the same for every query row: key padding): 128x64 w4 s2 TMA h2
  (97 KB, two programs per SM) 513 against 444 for the "masked" row's 128x64 w8 s3 TMA and 469
  for 128x128 w8 s3 TMA (h200-2026-11-30-halves.md, run 2); with is_causal too 363 against 316
  (run 3). On HF's row-varying bool mask it loses (339 against 365), which keeps the "masked"
  row. The compile check finds 72 bytes spilled in its loops with a causal key-padding mask
  (triton 3.6 and 3.9); the timed rows above ran with them.
The d256 rows are not timed: FA2's H100 choice (64x64, "2 CTAs per SM"), and 64x32 with a mask,
where 64x64 spills 24 bytes in the compile check.
The space holds the measured candidates and their neighbours (64x64 w4 s3 without TMA is the
TMA default itself where a tensor's layout rules descriptors out: launch.py falls back); 128x128
w8 s3 TMA, the d128 default of 2026-11-30, left it for the ws rows (a space holds at most 12).
"""

from .config import DecodeConfig, Family, KernelConfig, Tuning
from .sm80 import DECODE_FP32, DECODE_FP32_SPACE, FP32, keep

K = KernelConfig
D = DecodeConfig

PREFILL = Tuning(
    defaults={
        (64, 2): K(128, 64, 4, 3, tma=True, halves=2),
        (64, 2, "dense"): K(128, 256, 4, 2, tma=True, ws=True, persistent=True),
        (64, 2, "dense-causal"): K(128, 64, 4, 3, tma=True, halves=2),
        (64, 2, "dense-causal-short"): K(128, 128, 4, 2, tma=True, ws=True, persistent=True),
        (64, 2, "masked"): K(128, 64, 8, 3),
        (128, 2): K(128, 64, 4, 2, tma=True, halves=2),
        (128, 2, "dense"): K(128, 128, 4, 2, tma=True, ws=True, pingpong=True, persistent=True,
                             snake=True),
        (128, 2, "dense-causal-short"): K(128, 128, 4, 2, tma=True, ws=True, persistent=True),
        (128, 2, "keymask"): K(128, 64, 4, 2, tma=True, halves=2),
        (128, 2, "masked"): K(128, 64, 8, 3, tma=True),
        (128, 2, "short"): K(64, 64, 4, 3, tma=True),
        (128, 2, "split"): K(128, 64, 4, 3, tma=True, halves=2),
        (256, 2): K(64, 64, 8, 2),
        (256, 2, "masked"): K(64, 32, 8, 3),
        **FP32,
    },
    space=(
        K(128, 256, 4, 2, tma=True, ws=True, persistent=True),
        K(128, 64, 4, 3, tma=True, halves=2), K(128, 64, 8, 3, tma=True), K(128, 64, 8, 3),
        K(128, 64, 4, 2, tma=True, halves=2),
        K(128, 128, 4, 2, tma=True, ws=True, pingpong=True, persistent=True, snake=True),
        K(128, 128, 4, 2, tma=True, ws=True, persistent=True),
        K(64, 64, 4, 3, tma=True), K(64, 64, 8, 2), K(64, 32, 8, 3), *FP32.values(),
    ),
    keep=keep,
)

# Decode, MEASURED on an H200 for d128 bf16 (benchmarks/results/h200-2026-11-30.md): 128-key
# tiles (147 KB at 3 stages: one program per SM), at most one program per SM, splits of at least
# 2 tiles: the fastest of the space or within 1% of it on every row but the key-padded one
# (64x64 w8 s4 at two programs per SM: 3.6% faster there). Sq <= 32: the decode kernel beats the
# prefill kernel up to 32 queries and loses at 64 (B8, 8k keys). 32-row blocks: 64 rows spill
# with an HF 4-D mask, and 4 warps spill at 32.
DECODE = Tuning(
    defaults={
        (64, 2): D(32, 128, 8, 3, 1, 2, 32),
        (128, 2): D(32, 128, 8, 3, 1, 2, 32),
        (256, 2): D(32, 64, 8, 3, 1, 2, 16),
        **DECODE_FP32,
    },
    space=(D(32, 128, 8, 3, 1, 2, 32), D(32, 128, 8, 3, 2, 2, 32), D(32, 128, 8, 3, 4, 4, 32),
           D(64, 64, 8, 3, 1, 2, 32), D(64, 64, 8, 4, 2, 2, 32), D(32, 64, 8, 3, 1, 2, 16),
           *DECODE_FP32_SPACE),
)

FAMILY = Family("sm90", "nvidia", claims=("sm90",), archs={"sm90": 232448},
                kinds={"prefill": PREFILL, "decode": DECODE})
