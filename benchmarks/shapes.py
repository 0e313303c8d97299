"""The benchmark rows: the issues' tables, one list per device kind."""

from providers import Shape

# The chunked backend against torch SDPA on a CPU (float32 and bfloat16).
CPU = [
    Shape(1, 16, 4, 2048, 2048, 64, causal=True),
    Shape(1, 16, 4, 4096, 4096, 128),
    Shape(1, 16, 4, 1, 32768, 128),  # decode
]

# Prefill on an H100 (bf16 and fp16): the rows of the prefill issue, plus short sequences.
GPU_PREFILL = [
    Shape(2, 32, 8, 4096, 4096, 128),
    Shape(2, 32, 8, 4096, 4096, 128, causal=True),
    Shape(1, 32, 8, 16384, 16384, 128, causal=True),
    Shape(4, 16, 16, 4096, 4096, 64),
    Shape(4, 16, 16, 4096, 4096, 64, causal=True),
    Shape(2, 32, 8, 4096, 4096, 96),
    Shape(2, 32, 8, 2048, 2048, 128, padding=True),
    Shape(2, 32, 8, 2048, 2048, 128, causal=True, padding=True),
    Shape(2, 32, 8, 2048, 2048, 128, hf_mask=True),
    Shape(8, 32, 8, 512, 512, 128, causal=True),
    Shape(4, 32, 8, 1024, 1024, 128, causal=True),
    Shape(8, 32, 8, 512, 512, 128),
    Shape(4, 32, 8, 1024, 1024, 128),
    Shape(8, 16, 16, 1024, 1024, 64, causal=True),
    Shape(8, 16, 16, 1024, 1024, 64),
    Shape(16, 16, 16, 512, 512, 64, causal=True),
]

# Decode and short queries on an H100 (bf16): K/V bytes read / time.
GPU_DECODE = [
    Shape(8, 32, 8, 1, 8192, 128, causal=True),
    Shape(1, 32, 8, 1, 131072, 128, causal=True),
    Shape(1, 32, 8, 1, 4096, 128, causal=True),
    Shape(32, 32, 8, 1, 2048, 128, causal=True),
    Shape(8, 32, 8, 4, 8192, 128, causal=True),
    Shape(8, 32, 8, 1, 8192, 128, causal=True, padding=True),
]
