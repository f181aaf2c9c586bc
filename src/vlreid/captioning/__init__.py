"""Offline captioning of ReID datasets into Parquet shards (DESIGN 3.2 and 4).

- :mod:`vlreid.captioning.protocol`: the :class:`Captioner` protocol every backend follows.
- :mod:`vlreid.captioning.llava`: LLaVA-family models through transformers' Auto classes.
- :mod:`vlreid.captioning.attributes`: the template filled from human attribute labels.
- :mod:`vlreid.captioning.shards`: atomic Parquet shards, ``_manifest.json``, resume.
- :mod:`vlreid.captioning.caption_loop`: decode ahead, caption, parse, write shards
  (:func:`~vlreid.captioning.caption_loop.caption_into_shards`).
- :mod:`vlreid.captioning.data_parallel`: which slice of the images this process captions.
- :mod:`vlreid.captioning.run`: :func:`~vlreid.captioning.run.caption_dataset`, the whole run.
- :mod:`vlreid.captioning.audit`: caption attributes against labels.

Read a caption folder with ``pd.read_parquet(folder)``.
"""

from vlreid.captioning.protocol import Captioner, CaptionItem

__all__ = ["CaptionItem", "Captioner"]
