"""Tiny models for tests, benchmarks and the CPU demo, built from configs (nothing downloaded).

- :mod:`reid.testing.llava`: a tiny LLaVA with a locally trained tokenizer, saved like a hub
  checkpoint (``python -m reid.testing tiny-llava DIR``).
- :mod:`reid.testing.clip`: a tiny open_clip CLIP.

Submodules import transformers / open_clip; this package itself imports nothing heavy.
"""
