"""The Triton FlashAttention-2 forward kernel as a tqfa backend (backend.BACKEND).

Importing this package imports neither triton nor the kernel: backend.py loads them on first use.
"""
