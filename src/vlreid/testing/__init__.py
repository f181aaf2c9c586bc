"""Tiny models for tests, benchmarks and the CPU demo, built from configs (nothing downloaded).

- :mod:`vlreid.testing.llava`: a tiny LLaVA with a locally trained tokenizer, saved like a hub
  checkpoint (``python -m vlreid.testing tiny-llava DIR``).
- :mod:`vlreid.testing.clip`: a tiny open_clip CLIP.

Submodules import transformers / open_clip; this package itself imports nothing heavy.
"""
