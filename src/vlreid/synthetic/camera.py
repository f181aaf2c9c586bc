"""Synthetic cameras: what differs between the views of one procedural pedestrian.

Each :class:`CameraSpec` fixes a textured scene (brick wall, shop windows, park hedge, tiled
station, street front, office corridor, with camera-specific colours), a colour cast and exposure
(moderate, so that colour words stay correct), the scale of people in the frame, a preferred
viewpoint, an occluder kind with its probability, image noise and sharpness. The renderer
(:mod:`vlreid.synthetic.renderer`) paints :func:`paint_scene` once per camera and size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from vlreid.synthetic.person import RGB

SCENES: tuple[str, ...] = ("brick", "storefront", "park", "station", "street", "office")
"""Background kinds; camera ``i`` uses ``SCENES[i % len(SCENES)]``."""

VIEWS: tuple[str, ...] = ("front", "back", "left", "right")
"""Viewpoints; ``left`` and ``right`` are mirrored side views."""

_TEXTURE_CONTRAST = 0.8
"""Contrast of the scene textures around their mean colour."""

_SCENE_TINTS: tuple[tuple[int, int, int], ...] = (
    (190, 90, 60),
    (70, 80, 170),
    (60, 150, 60),
    (220, 220, 230),
    (50, 50, 55),
    (210, 180, 110),
    (120, 60, 130),
    (60, 160, 170),
    (150, 150, 150),
)
"""Per-camera scene tints (camera ``i`` uses entry ``i % 9``)."""

_TINT_WEIGHT = 0.3

OCCLUDERS: tuple[str, ...] = ("none", "barrier", "pole", "bush", "car")
"""Occluder kinds drawn in front of the person."""


@dataclass(frozen=True)
class CameraSpec:
    """One camera of the synthetic network.

    Attributes:
        index: 0-based camera id.
        scene: One of :data:`SCENES`.
        scene_seed: Seed of the scene texture and colours.
        gain: Per-channel RGB multiplier (exposure times colour cast), each within about 15%.
        scale: Height of a standard adult as a fraction of the image height.
        view_weights: Probabilities of :data:`VIEWS`.
        occluder: One of :data:`OCCLUDERS`.
        occlusion_probability: Chance that an image of this camera is occluded.
        occluder_rgb: Base colour of the occluder.
        noise: Standard deviation of the per-pixel noise, in 0-255 units.
        sharpness: 1.0 for a sharp camera; below 1, images are down- then up-sampled by it.
    """

    index: int
    scene: str
    scene_seed: int
    gain: tuple[float, float, float]
    scale: float
    view_weights: tuple[float, float, float, float]
    occluder: str
    occlusion_probability: float
    occluder_rgb: RGB
    noise: float
    sharpness: float

    def sample_view(self, rng: np.random.Generator) -> str:
        """Draw a viewpoint from :attr:`view_weights`."""
        draw, total = rng.random() * sum(self.view_weights), 0.0
        for view, weight in zip(VIEWS, self.view_weights, strict=True):
            total += weight
            if draw < total:
                return view
        return VIEWS[-1]


def make_cameras(count: int, seed: int = 0, occlusion: bool = True) -> list[CameraSpec]:
    """The cameras of a synthetic network.

    Cameras cycle through :data:`SCENES`; each prefers one viewpoint (front, back or a side);
    every third camera (index 2, 5, 8) has an occluder in half of its images.

    Args:
        count: Number of cameras.
        seed: Seed of every camera property.
        occlusion: If false, no camera has an occluder.

    Returns:
        ``count`` camera specifications.
    """
    rng = np.random.default_rng([seed, 7919])
    casts = ((1.07, 1.0, 0.9), (0.92, 0.99, 1.08), (0.96, 1.05, 0.96), (1.0, 1.0, 1.0))
    preferred = ((0.55, 0.15, 0.15, 0.15), (0.15, 0.55, 0.15, 0.15), (0.2, 0.2, 0.3, 0.3))
    cameras = []
    for index in range(count):
        cast = np.asarray(casts[int(rng.integers(len(casts)))])
        exposure = rng.uniform(0.86, 1.1)
        gain = tuple(float(round(value, 4)) for value in cast * exposure)
        occluder = rng.integers(40, 200, size=3)
        kind = OCCLUDERS[1 + (index // 3) % 4] if occlusion and index % 3 == 2 else "none"
        cameras.append(
            CameraSpec(
                index=index,
                scene=SCENES[index % len(SCENES)],
                scene_seed=int(rng.integers(2**31)),
                gain=(gain[0], gain[1], gain[2]),
                scale=float(round(rng.uniform(0.84, 0.97), 4)),
                view_weights=preferred[(index + int(rng.integers(3))) % 3],
                occluder=kind,
                occlusion_probability=0.5 if kind != "none" else 0.0,
                occluder_rgb=(int(occluder[0]), int(occluder[1]), int(occluder[2])),
                noise=float(round(rng.uniform(3.0, 7.0), 3)),
                sharpness=0.7 if index % 4 == 3 else 1.0,
            )
        )
    return cameras


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1], shape ``(height, width)``."""
    coarse = rng.uniform(0, 255, size=(max(2, height // cells), max(2, width // cells)))
    image = Image.fromarray(coarse.astype(np.uint8)).resize((width, height), Image.BICUBIC)
    return np.asarray(image, dtype=np.float32) / 127.5 - 1.0


def _colour(rng: np.random.Generator, low: int, high: int) -> np.ndarray:
    return rng.integers(low, high, size=3).astype(np.float32)


def paint_scene(camera: CameraSpec, height: int, width: int) -> np.ndarray:
    """Paint a camera's background.

    Args:
        camera: The camera.
        height: Image height in pixels.
        width: Image width in pixels (the renderer asks for a few crops' width).

    Returns:
        ``(height, width, 3)`` uint8 image: a textured wall above a textured ground.
    """
    rng = np.random.default_rng(camera.scene_seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    horizon = height * rng.uniform(0.62, 0.78)
    unit = height / 16.0
    wall = np.empty((height, width, 3), np.float32)
    ground = np.empty((height, width, 3), np.float32)
    grain = _smooth_noise(rng, height, width, 3)[..., None]
    if camera.scene == "brick":
        rows = (ys // (unit * 0.7)).astype(np.int64)
        columns = ((xs + (rows % 2) * unit * 0.8) // (unit * 1.6)).astype(np.int64)
        tint = rng.uniform(-25, 25, size=(int(rows.max()) + 1, int(columns.max()) + 1, 1))
        wall[:] = _colour(rng, 120, 190) * np.asarray((1.0, 0.55, 0.42)) + tint[rows, columns]
        mortar = ((ys % (unit * 0.7)) < 1.5) | (
            ((xs + (rows % 2) * unit * 0.8) % (unit * 1.6)) < 1.5
        )
        wall[mortar] = _colour(rng, 170, 215)
        ground[:] = _colour(rng, 110, 160) + 18 * grain
        ground[((xs + ys * 0.5) % (unit * 1.5)) < 1.5] *= 0.8
    elif camera.scene == "storefront":
        wall[:] = _colour(rng, 150, 230) + 10 * grain
        glass = _colour(rng, 30, 90) + np.asarray((0, 10, 30))
        panes = ((xs % (unit * 5)) > unit * 0.6) & (ys > unit * 1.5) & (ys < horizon - unit)
        wall[panes] = glass + 40 * (1 - ys[panes, None] / horizon) + 20 * grain[panes]
        ground[:] = _colour(rng, 60, 110) + 25 * grain
    elif camera.scene == "park":
        leaves = _smooth_noise(rng, height, width, 2)[..., None]
        wall[:] = np.asarray((50, 110, 45), np.float32) * rng.uniform(0.7, 1.2) + 45 * leaves
        trunks = (xs % (unit * 7)) < unit * 0.8
        wall[trunks] = np.asarray((90, 62, 40), np.float32) + 15 * grain[trunks]
        ground[:] = np.asarray((120, 150, 70), np.float32) * rng.uniform(0.8, 1.15) + 25 * grain
        path = np.abs(xs - width * rng.uniform(0.3, 0.7) - (ys - horizon) * 0.8) < unit * 2
        ground[path] = np.asarray((190, 170, 130), np.float32) + 15 * grain[path]
    elif camera.scene == "station":
        tile = _colour(rng, 170, 240)
        wall[:] = tile + 8 * grain
        wall[((xs % unit) < 1.2) | ((ys % unit) < 1.2)] = tile * 0.6
        wall[(xs % (unit * 9)) < unit * 1.5] = _colour(rng, 60, 140)
        ground[:] = _colour(rng, 90, 150) + 10 * np.sin(xs / unit * 3)[..., None] + 12 * grain
    elif camera.scene == "street":
        wall[:] = _colour(rng, 90, 170) + 15 * grain
        windows = ((xs % (unit * 3)) > unit * 1.2) & ((ys % (unit * 3.5)) > unit * 1.4)
        wall[windows & (ys < horizon - unit)] = _colour(rng, 20, 70)
        ground[:] = np.asarray((70, 70, 74), np.float32) + 20 * grain
        ground[(np.abs(ys - horizon - unit * 2) < unit * 0.25) & ((xs % (unit * 4)) < unit * 2)] = (
            np.asarray((225, 210, 120), np.float32)
        )
    else:  # office corridor
        wall[:] = _colour(rng, 160, 225) + 6 * grain
        band = (ys > horizon - unit * 3) & (ys < horizon - unit * 2.4)
        wall[band] = _colour(rng, 60, 130)
        doors = ((xs % (unit * 10)) < unit * 3) & (ys > unit * 3) & (ys < horizon)
        wall[doors] = _colour(rng, 90, 150) * np.asarray((1.0, 0.8, 0.6)) + 8 * grain[doors]
        planks = (ys // (unit * 0.5)).astype(np.int64) % 3
        ground[:] = np.asarray((150, 105, 65), np.float32) * (0.9 + 0.06 * planks[..., None])
    scene = np.where((ys < horizon)[..., None], wall, ground)
    # Soften the texture towards the scene's mean colour: cameras stay distinct by colour and
    # layout, without high-contrast clutter that a person's outline would drown in.
    mean = scene.reshape(-1, 3).mean(axis=0)
    scene = mean + _TEXTURE_CONTRAST * (scene - mean)
    # A camera-specific tint keeps the scenes of different cameras far apart in colour.
    tint = np.asarray(_SCENE_TINTS[camera.index % len(_SCENE_TINTS)], np.float32)
    scene = (1 - _TINT_WEIGHT) * scene + _TINT_WEIGHT * tint
    return np.clip(scene, 0, 255).astype(np.uint8)
