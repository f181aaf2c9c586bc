"""The :class:`Pen`: body coordinates of a procedural pedestrian -> canvas pixels.

Coordinates are in fractions of the person's height: ``y`` goes from 0 at the top of the head to
1 at the soles, ``x`` from the body's vertical axis (positive to the image right for a front
view). The pen maps them to canvas pixels, mirroring for back and left views, and draws PIL
polygons, ellipses, lines and tapered limbs. :mod:`vlreid.synthetic.body`,
:mod:`vlreid.synthetic.clothes` and :mod:`vlreid.synthetic.figure` draw with it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import ImageDraw

from vlreid.synthetic.person import RGB

Point = tuple[float, float]


@dataclass
class Pen:
    """Maps body coordinates to canvas pixels and draws polygons, ellipses and lines.

    Attributes:
        draw: The PIL drawing context.
        center_x: Canvas x of the body axis, in pixels.
        top: Canvas y of the top of the head, in pixels.
        unit: The person's height in pixels.
        mirror: 1 for the natural orientation, -1 for a horizontally mirrored figure.
    """

    draw: ImageDraw.ImageDraw
    center_x: float
    top: float
    unit: float
    mirror: float = 1.0

    def point(self, x: float, y: float) -> Point:
        """Canvas pixel of body coordinates ``(x, y)``."""
        return (self.center_x + self.mirror * x * self.unit, self.top + y * self.unit)

    def polygon(self, points: Sequence[Point], fill: RGB, outline: RGB | None = None) -> None:
        """A filled polygon through body-coordinate points."""
        scale_x, unit = self.mirror * self.unit, self.unit
        pixels = [(self.center_x + scale_x * x, self.top + y * unit) for x, y in points]
        self.draw.polygon(pixels, fill=fill, outline=outline)

    def ellipse(
        self,
        x: float,
        y: float,
        radius_x: float,
        radius_y: float,
        fill: RGB,
        outline: RGB | None = None,
    ) -> None:
        """A filled ellipse centred on ``(x, y)`` with body-coordinate radii."""
        left, top = self.point(x - radius_x, y - radius_y)
        right, bottom = self.point(x + radius_x, y + radius_y)
        box = (min(left, right), top, max(left, right), bottom)
        self.draw.ellipse(box, fill=fill, outline=outline)

    def line(self, points: Sequence[Point], width: float, fill: RGB) -> None:
        """A polyline of the given body-coordinate width."""
        pixels = max(1, int(round(width * self.unit)))
        self.draw.line([self.point(x, y) for x, y in points], fill=fill, width=pixels)

    def limb(
        self,
        chain: Sequence[Point],
        widths: Sequence[float],
        y_start: float,
        y_end: float,
        fill: RGB,
        outline: RGB | None = None,
    ) -> None:
        """The part of a tapered limb (a polyline with widths) between two heights.

        The chain's ``y`` must increase along it; the part is cut by linear interpolation.
        """
        ys = [y for _, y in chain]
        y_start, y_end = max(y_start, ys[0]), min(y_end, ys[-1])
        if y_end <= y_start:
            return
        samples = [interpolate(chain, widths, y_start)]
        samples += [
            (x, y, w) for (x, y), w in zip(chain, widths, strict=True) if y_start < y < y_end
        ]
        samples.append(interpolate(chain, widths, y_end))
        left, right = [], []
        last = len(samples) - 1
        for index, (x, y, w) in enumerate(samples):
            x0, y0, _ = samples[max(index - 1, 0)]
            x1, y1, _ = samples[min(index + 1, last)]
            norm = max(math.hypot(x1 - x0, y1 - y0), 1e-6)
            # Unit normal of the local direction, scaled to half the width.
            nx, ny = (y1 - y0) / norm * w / 2, -(x1 - x0) / norm * w / 2
            left.append((x - nx, y - ny))
            right.append((x + nx, y + ny))
        self.polygon(left + right[::-1], fill, outline)


def interpolate(
    chain: Sequence[Point], widths: Sequence[float], y: float
) -> tuple[float, float, float]:
    """Point and width of a chain (increasing ``y``) at height ``y``."""
    for (x0, y0), (x1, y1), w0, w1 in zip(chain, chain[1:], widths, widths[1:], strict=False):
        if y <= y1 or (x1, y1) == chain[-1]:
            t = 0.0 if y1 == y0 else min(max((y - y0) / (y1 - y0), 0.0), 1.0)
            return (x0 + t * (x1 - x0), y, w0 + t * (w1 - w0))
    raise ValueError("empty chain")
