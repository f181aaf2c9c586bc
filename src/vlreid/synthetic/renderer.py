"""The fast renderer of procedural pedestrians: one person, one camera, one image.

:class:`PedestrianRenderer` draws a :class:`~vlreid.synthetic.person.PersonSpec` seen by
a :class:`~vlreid.synthetic.camera.CameraSpec`: a random crop of the camera's scene, the
person (PIL polygons on a canvas ``supersample`` times larger, then box-filtered down, which
anti-aliases the edges), an optional occluder, the camera's colour cast and exposure, sensor
noise and, for soft cameras, a loss of sharpness. Everything random comes from the ``rng``
argument, so an image is a pure function of its inputs.

Example (the loop a captioner-training script would run)::

    renderer = PedestrianRenderer()
    cameras = make_cameras(6, seed=0)
    rng = np.random.default_rng(0)
    person = sample_person(rng)
    image = renderer.render(person, cameras[0], rng)   # (128, 64, 3) uint8
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from vlreid.errors import ReIDError
from vlreid.synthetic.camera import VIEWS, CameraSpec, paint_scene
from vlreid.synthetic.figure import draw_person
from vlreid.synthetic.person import PersonSpec, shade

_SCENE_WIDTH_FACTOR = 4
"""A camera's painted scene is this many crops wide; images take random crops of it."""


class PedestrianRenderer:
    """Renders person crops of one size.

    Args:
        height: Output height in pixels (Market-1501 crops are 128).
        width: Output width in pixels (64).
        supersample: Drawing resolution factor (2 anti-aliases edges; 1 is faster).
        noise_seed: Seed of the fixed noise texture that images take random crops of.
    """

    def __init__(
        self, height: int = 128, width: int = 64, supersample: int = 2, noise_seed: int = 0
    ) -> None:
        if height < 16 or width < 8 or supersample < 1:
            raise ReIDError(
                f"image size must be at least 16x8 (HxW) and supersample >= 1; "
                f"got {height}x{width}, supersample {supersample}"
            )
        self.height, self.width, self.supersample = height, width, supersample
        self._canvas = (height * supersample, width * supersample)
        self._scenes: dict[tuple[int, str, int], np.ndarray] = {}
        noise_rng = np.random.default_rng([noise_seed, 104729])
        self._noise = noise_rng.standard_normal((height * 2, width * 2, 3)).astype(np.float32)

    def scene(self, camera: CameraSpec) -> np.ndarray:
        """The camera's painted background at canvas resolution (cached), ``(H', W', 3)``."""
        key = (camera.index, camera.scene, camera.scene_seed)
        if key not in self._scenes:
            canvas_height, canvas_width = self._canvas
            margin = canvas_height // 8
            self._scenes[key] = paint_scene(
                camera, canvas_height + margin, canvas_width * _SCENE_WIDTH_FACTOR
            )
        return self._scenes[key]

    def render(
        self,
        person: PersonSpec,
        camera: CameraSpec,
        rng: np.random.Generator,
        view: str | None = None,
        occlude: bool | None = None,
        background: bool = True,
    ) -> np.ndarray:
        """Render one image.

        Args:
            person: Who is seen.
            camera: Which camera sees them (scene, light, scale, occluder, noise).
            rng: Source of every random choice of this image (crop, pose, jitter, noise).
            view: ``front``, ``back``, ``left`` or ``right``; drawn from the camera if None.
            occlude: Force (True) or forbid (False) the camera's occluder; None draws it with
                the camera's probability.
            background: If False, paint a flat grey background (for attribute studies).

        Returns:
            ``(height, width, 3)`` uint8 RGB image.
        """
        if view is None:
            view = camera.sample_view(rng)
        if view not in VIEWS:
            raise ReIDError(f"unknown view {view!r}; expected one of {VIEWS}")
        canvas_height, canvas_width = self._canvas
        scene = self.scene(camera)
        top = int(rng.integers(0, scene.shape[0] - canvas_height + 1))
        left = int(rng.integers(0, scene.shape[1] - canvas_width + 1))
        if background:
            crop = scene[top : top + canvas_height, left : left + canvas_width]
            canvas = Image.fromarray(np.ascontiguousarray(crop))
        else:
            canvas = Image.new("RGB", (canvas_width, canvas_height), (128, 128, 128))
        draw = ImageDraw.Draw(canvas, "RGBA")
        scale = camera.scale * (1.0 + rng.uniform(-0.06, 0.06))
        height_pixels = canvas_height * scale * person.height
        feet_y = canvas_height * (1.0 - rng.uniform(0.012, 0.045))
        center_x = canvas_width * (0.5 + rng.uniform(-0.12, 0.12))
        stride = float(rng.uniform(-1.0, 1.0))
        shadow_x, shadow_y = canvas_width * 0.26 * scale, canvas_height * 0.018
        draw.ellipse(
            (center_x - shadow_x, feet_y - shadow_y, center_x + shadow_x, feet_y + shadow_y),
            fill=(0, 0, 0, 70),
        )
        draw_person(draw, person, view, center_x, feet_y, height_pixels, stride)
        if occlude is None:
            occlude = rng.random() < camera.occlusion_probability
        if occlude and camera.occluder != "none":
            self._draw_occluder(draw, camera, rng)
        if self.supersample > 1:
            canvas = canvas.reduce(self.supersample)
        if camera.sharpness < 1.0:
            small = (
                max(1, round(self.width * camera.sharpness)),
                max(1, round(self.height * camera.sharpness)),
            )
            canvas = canvas.resize(small, Image.BILINEAR).resize(
                (self.width, self.height), Image.BILINEAR
            )
        return self._expose(np.asarray(canvas, dtype=np.float32), camera, rng)

    def render_image(
        self, person: PersonSpec, camera: CameraSpec, rng: np.random.Generator, **options: object
    ) -> Image.Image:
        """:meth:`render` as a PIL image (same options)."""
        return Image.fromarray(self.render(person, camera, rng, **options))  # type: ignore[arg-type]

    def _expose(
        self, pixels: np.ndarray, camera: CameraSpec, rng: np.random.Generator
    ) -> np.ndarray:
        """Colour cast and exposure of the camera (plus a little per image), then noise."""
        gain = np.asarray(camera.gain, np.float32) * np.float32(1.0 + rng.uniform(-0.05, 0.05))
        row = int(rng.integers(0, self.height + 1))
        column = int(rng.integers(0, self.width + 1))
        noise = self._noise[row : row + self.height, column : column + self.width]
        pixels = pixels * gain + noise * np.float32(camera.noise)
        return np.clip(pixels, 0, 255).astype(np.uint8)

    def _draw_occluder(
        self, draw: ImageDraw.ImageDraw, camera: CameraSpec, rng: np.random.Generator
    ) -> None:
        """A barrier, pole, bush or car in front of the lower or side part of the person."""
        height, width = self._canvas
        color = camera.occluder_rgb
        dark, light = shade(color, 0.6), shade(color, 1.3)
        if camera.occluder == "barrier":
            top = height * rng.uniform(0.66, 0.8)
            draw.rectangle((0, top, width, height), fill=color)
            draw.rectangle((0, top, width, top + height * 0.025), fill=light)
            for x in np.arange(rng.uniform(0, width / 3), width, width / 3):
                draw.rectangle((x, top, x + width * 0.04, height), fill=dark)
        elif camera.occluder == "pole":
            pole_width = width * rng.uniform(0.16, 0.26)
            left = width * rng.choice([rng.uniform(0.05, 0.3), rng.uniform(0.55, 0.8)])
            draw.rectangle((left, 0, left + pole_width, height), fill=color)
            draw.rectangle((left, 0, left + pole_width * 0.25, height), fill=light)
        elif camera.occluder == "bush":
            base = height * rng.uniform(0.68, 0.8)
            for _ in range(7):
                x, radius = width * rng.uniform(-0.1, 1.1), width * rng.uniform(0.18, 0.32)
                y = base + radius * rng.uniform(-0.3, 0.6)
                green = (int(30 + 40 * rng.random()), int(90 + 60 * rng.random()), 40)
                draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=green)
            draw.rectangle((0, base + width * 0.15, width, height), fill=(40, 105, 45))
        else:  # car
            top = height * rng.uniform(0.6, 0.74)
            draw.rounded_rectangle((-width * 0.2, top, width * 1.2, height * 1.05), 8, fill=color)
            draw.rectangle((0, top + height * 0.03, width, top + height * 0.09), fill=(40, 50, 60))
            draw.rectangle((0, top + height * 0.15, width, top + height * 0.17), fill=dark)
