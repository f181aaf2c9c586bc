"""The procedural pedestrian renderer behind ``reid data synth`` (DESIGN 7).

Modules, each importing only those above it in this list:

- :mod:`vlreid.synthetic.person`: :class:`PersonSpec` (caption attributes + identity traits),
  :func:`sample_person`, the colour palette.
- :mod:`vlreid.synthetic.pen`: :class:`~vlreid.synthetic.pen.Pen`, body coordinates -> pixels.
- :mod:`vlreid.synthetic.body`: proportions, arms, head and carried items.
- :mod:`vlreid.synthetic.clothes`: legs, lower garment, shoes, upper garment.
- :mod:`vlreid.synthetic.figure`: one person in a front, back or side view.
- :mod:`vlreid.synthetic.camera`: :class:`CameraSpec` (scene, light, scale, occluders, noise).
- :mod:`vlreid.synthetic.renderer`: :class:`PedestrianRenderer`, one person seen by one camera.
- :mod:`vlreid.synthetic.dataset`: :func:`make_synthetic_dataset`, a Market-1501-layout folder
  with ``attributes.parquet``; :mod:`vlreid.datasets` parses it as ``synthetic`` without
  importing this package.

The package depends on :mod:`vlreid.attributes` and :mod:`vlreid.errors` only. To render images
outside a dataset (for example thousands of captioned training pictures)::

    from vlreid.synthetic import PedestrianRenderer, make_cameras, sample_person

    renderer, cameras = PedestrianRenderer(), make_cameras(6, seed=0)
    rng = np.random.default_rng(0)
    person = sample_person(rng)                               # attributes + traits
    image = renderer.render(person, cameras[2], rng, occlude=False)   # (128, 64, 3) uint8
"""

from __future__ import annotations

from vlreid.synthetic.camera import CameraSpec, make_cameras
from vlreid.synthetic.dataset import (
    ATTRIBUTES_FILE,
    SPLIT_FOLDERS,
    SyntheticSummary,
    make_identities,
    make_synthetic_dataset,
)
from vlreid.synthetic.person import PersonSpec, sample_person
from vlreid.synthetic.renderer import PedestrianRenderer

__all__ = [
    "ATTRIBUTES_FILE",
    "SPLIT_FOLDERS",
    "CameraSpec",
    "PedestrianRenderer",
    "PersonSpec",
    "SyntheticSummary",
    "make_cameras",
    "make_identities",
    "make_synthetic_dataset",
    "sample_person",
]
