"""Evaluation: exact ReID metrics in bounded memory, re-ranking, ranked-list pictures.

- :mod:`vlreid.evaluation.metrics`: ``evaluate_distmat``, ``evaluate_features`` (Market protocol:
  mAP, CMC, mINP; equal to torchreid's ``evaluate_rank`` to 1e-6, without sorting the gallery).
- :mod:`vlreid.evaluation.protocols`: CUHK03 single-gallery-shot and VehicleID (10 random draws).
- :mod:`vlreid.evaluation.rerank`: k-reciprocal re-ranking (Zhong et al. 2017), sparse.
- :mod:`vlreid.evaluation.visualize`: ranked-list PNGs (query, top-K framed green / red).
- :mod:`vlreid.evaluation.feature_file`: the ``.npz`` features file of ``reid evaluate --features``.
- :mod:`vlreid.evaluation.scoring`: ``reid evaluate`` (any input source -> table / JSON, picture).
- :mod:`vlreid.evaluation.features`: feature extraction from a model or checkpoint.

Submodules are imported explicitly, so that importing the package stays cheap.
"""
