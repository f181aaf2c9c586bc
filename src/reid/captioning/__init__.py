"""Offline captioning of ReID datasets into Parquet shards (DESIGN 3.2 and 4).

- :mod:`reid.captioning.protocol`: the :class:`Captioner` protocol every backend follows.
- :mod:`reid.captioning.llava`: LLaVA-family models through transformers' Auto classes.
- :mod:`reid.captioning.attributes`: the template filled from human attribute labels.
- :mod:`reid.captioning.shards`: atomic Parquet shards, ``_manifest.json``, resume.
- :mod:`reid.captioning.run`: :func:`~reid.captioning.run.caption_dataset`, the whole run.
- :mod:`reid.captioning.audit`: caption attributes against labels.

Read a caption folder with ``pd.read_parquet(folder)``.
"""

from reid.captioning.protocol import Captioner, CaptionItem

__all__ = ["CaptionItem", "Captioner"]
