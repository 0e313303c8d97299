"""Integrations with other libraries; nothing in tqfa's core imports them.

- `tqfa.integrations.custom_op`: `tqfa.attention` as the torch.library op `tqfa::attention`, for
  torch.compile(fullgraph=True) and torch.export.
- `tqfa.integrations.huggingface`: `register()` makes `attn_implementation="tqfa"` available in
  transformers.
"""
