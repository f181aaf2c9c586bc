"""Garments of a procedural pedestrian: legs with the lower garment and shoes, the upper garment.

Used by :mod:`vlreid.synthetic.figure`; coordinates are fractions of the person's height
(``y`` 0 at the top of the head, 1 at the soles). Side views face the image right.
"""

from __future__ import annotations

import numpy as np

from vlreid.synthetic.body import Body
from vlreid.synthetic.pen import Pen
from vlreid.synthetic.person import RGB, PersonSpec, shade


def _shorts_y(body: Body) -> float:
    return body.crotch_y + 0.15


def _skirt_y(body: Body) -> float:
    return body.crotch_y + 0.23


def draw_lower(pen: Pen, person: PersonSpec, body: Body, side: bool, stride: float) -> None:
    """Bare legs, the lower garment with its detail, and the shoes."""
    top = body.crotch_y - (0.06 if side else 0.025)
    hem = {"trousers": body.ankle_y, "shorts": _shorts_y(body), "skirt": top}[person.lower_type]
    if side:
        step = 0.085 * stride
        legs = [(-step, 0.8), (step, 1.0)]  # far leg first, darker
        hip = [
            (-body.depth_back - (0.02 if person.gender == "female" else 0.01), body.waist_y),
            (body.depth_front, body.waist_y),
            (body.depth_front + 0.004, body.crotch_y),
            (-body.depth_back - 0.012, body.crotch_y),
        ]
    else:
        legs = [(-1.0, 1.0), (1.0, 1.0)]
        hip = [
            (-body.waist_w, body.waist_y),
            (body.waist_w, body.waist_y),
            (body.hip_w, body.crotch_y - 0.02),
            (-body.hip_w, body.crotch_y - 0.02),
        ]
    for placement, light in legs:
        if side:
            chain = [(0.0, top), (placement * 0.5 + 0.012, body.knee_y), (placement, body.ankle_y)]
            widths = [0.088 * person.build, 0.05, 0.034]
        else:
            spread = 0.038 + 0.008 * stride
            chain = [
                (placement * body.hip_w * 0.5, top),
                (placement * (body.hip_w * 0.3 + 0.014), body.knee_y),
                (placement * spread, body.ankle_y),
            ]
            widths = [body.hip_w, 0.052, 0.034]
        lower, skin = shade(person.lower_rgb, light), shade(person.skin_rgb, light)
        pen.limb(chain, widths, top, body.ankle_y + 0.006, skin)
        if hem > top:
            pen.limb(chain, widths, top - 0.01, hem, lower, shade(lower, 0.7))
            if person.lower_detail == "cuffs":
                pen.limb(chain, widths, hem - 0.024, hem, shade(person.detail_rgb, light))
            if person.lower_detail == "side_stripe":
                outer = [
                    (x + (0.0 if side else placement) * w / 2.1, y)
                    for (x, y), w in zip(chain, widths, strict=True)
                ]
                pen.limb(outer, [0.012] * 3, top + 0.02, hem, shade(person.detail_rgb, light))
        _draw_shoe(pen, person, chain[-1][0], body.ankle_y, side, light)
    if person.lower_type != "skirt":
        pen.polygon(hip, person.lower_rgb, shade(person.lower_rgb, 0.7))
        return
    flare, skirt_y = 0.062, _skirt_y(body)
    if side:
        front, back = body.depth_front + 0.006, -body.depth_back - 0.02
        outline = [
            (back, body.waist_y),
            (front, body.waist_y),
            (front + flare, skirt_y),
            (back - flare, skirt_y),
        ]
    else:
        wide = body.hip_w * 1.45 + 0.012
        outline = [
            (-body.waist_w, body.waist_y),
            (body.waist_w, body.waist_y),
            (wide, skirt_y),
            (-wide, skirt_y),
        ]
    pen.polygon(outline, person.lower_rgb, shade(person.lower_rgb, 0.65))
    band_color = person.detail_rgb if person.lower_detail == "cuffs" else None
    if band_color is not None:
        top_left, top_right = outline[3], outline[2]
        pen.polygon(
            [
                (top_left[0] * 0.96, skirt_y - 0.026),
                (top_right[0] * 0.96, skirt_y - 0.026),
                top_right,
                top_left,
            ],
            band_color,
        )
    if person.lower_detail == "side_stripe":
        pen.line(
            [(outline[1][0] * 0.7, body.waist_y + 0.02), (outline[2][0] * 0.8, skirt_y)],
            0.012,
            person.detail_rgb,
        )


def _draw_shoe(
    pen: Pen, person: PersonSpec, x: float, ankle_y: float, side: bool, light: float
) -> None:
    shoe, sole = shade(person.shoe_rgb, light), shade(person.sole_rgb, light)
    if side:
        pen.polygon(
            [
                (x - 0.03, ankle_y - 0.018),
                (x + 0.02, ankle_y - 0.016),
                (x + 0.07, 0.984),
                (x + 0.07, 1.0),
                (x - 0.034, 1.0),
            ],
            shoe,
        )
        pen.polygon(
            [(x - 0.034, 0.992), (x + 0.07, 0.992), (x + 0.07, 1.0), (x - 0.034, 1.0)], sole
        )
    else:
        pen.ellipse(x, ankle_y + 0.016, 0.034, 0.03, shoe)
        pen.polygon(
            [(x - 0.034, 0.992), (x + 0.034, 0.992), (x + 0.034, 1.0), (x - 0.034, 1.0)], sole
        )


def _torso_profile(
    body: Body, person: PersonSpec, side: bool
) -> tuple[list[float], list[float], list[float]]:
    """Heights and the two edges (left/back, right/front) of the upper garment."""
    coat = person.upper_type == "coat"
    female = person.gender == "female"
    top = body.shoulder_y + 0.022
    if side:
        # Profile silhouettes: a deep chest and broad upper back narrowing to the hips (male)
        # versus a bust and a hip curve (female).
        lean = body.lean * 0.6
        ys = [body.shoulder_y + 0.004, body.shoulder_y + 0.075, body.waist_y, body.crotch_y - 0.03]
        front = [
            body.depth_front + lean,
            body.depth_front + (0.042 if female else 0.022) + lean * 0.7,
            body.depth_front * (0.85 if female else 0.95),
            body.depth_front + (0.012 if female else -0.008),
        ]
        back = [
            -body.depth_back + lean - (0.0 if female else 0.02),
            -body.depth_back + lean * 0.6 - (0.0 if female else 0.016),
            -body.depth_back * (0.85 if female else 0.95),
            -body.depth_back - (0.045 if female else 0.0),
        ]
        flare = 0.03
    else:
        ys = [top, body.waist_y, body.crotch_y - 0.02]
        front = [body.shoulder_w, body.waist_w, body.hip_w + 0.004]
        back = [-value for value in front]
        flare = body.hip_w * 0.12 + 0.014
    if body.hem_y > ys[-1]:
        ys.append(body.hem_y)
        front.append(front[-1] + (flare if coat else 0.0))
        back.append(back[-1] - (flare if coat else 0.0))
    return ys, back, front


def _band(
    pen: Pen,
    profile: tuple[list[float], list[float], list[float]],
    y: float,
    thickness: float,
    fill: RGB,
) -> None:
    ys, back, front = profile
    y0, y1 = y, y + thickness
    pen.polygon(
        [
            (float(np.interp(y0, ys, back)), y0),
            (float(np.interp(y0, ys, front)), y0),
            (float(np.interp(y1, ys, front)), y1),
            (float(np.interp(y1, ys, back)), y1),
        ],
        fill,
    )


def draw_torso(pen: Pen, person: PersonSpec, body: Body, side: bool, back: bool) -> None:
    """The upper garment with its collar, pattern and hem, and a belt below it."""
    color, dark = person.upper_rgb, shade(person.upper_rgb, 0.62)
    profile = _torso_profile(body, person, side)
    ys, left, right = profile
    outline = [(left[0] * 0.85, body.shoulder_y), (right[0] * 0.85, body.shoulder_y)]
    outline += list(zip(right, ys, strict=True)) + list(zip(left, ys, strict=True))[::-1]
    pen.polygon(outline, color, dark)
    usable_bottom = min(body.hem_y, body.crotch_y - 0.02) - 0.03
    stripe_y = (
        body.shoulder_y + 0.03 + person.pattern_position * (usable_bottom - body.shoulder_y - 0.06)
    )
    if person.pattern == "stripe":
        _band(pen, profile, stripe_y, 0.04, person.pattern_rgb)
    elif person.pattern == "two_stripes":
        _band(pen, profile, stripe_y - 0.035, 0.024, person.pattern_rgb)
        _band(pen, profile, stripe_y + 0.025, 0.024, person.pattern_rgb)
    elif person.pattern == "logo" and not side:
        x = 0.0 if back else (0.45 if person.pattern_position > 0.5 else -0.45) * body.shoulder_w
        size = 0.04 if back else 0.03
        y = body.shoulder_y + 0.05 + (0.02 if back else 0.0)
        pen.polygon(
            [(x - size, y), (x + size, y), (x + size, y + size * 1.5), (x - size, y + size * 1.5)],
            person.pattern_rgb,
        )
    elif person.pattern == "zip":
        x = (body.depth_front * 0.9) if side else 0.0
        y = body.shoulder_y + (0.045 if back else 0.005)
        if not back or side:
            pen.line([(x, y), (x, body.hem_y - 0.005)], 0.011, person.pattern_rgb)
        else:
            _band(pen, profile, y, 0.014, person.pattern_rgb)
    if person.upper_type == "sweater":
        _band(pen, profile, body.hem_y - 0.016, 0.016, dark)
    if person.upper_type == "coat" and not back:
        x = body.depth_front * 0.85 + body.lean * 0.4 if side else 0.0
        pen.line([(x, body.shoulder_y + 0.1), (x, body.hem_y)], 0.008, dark)
        if not side:
            neck = body.neck_w * 1.3
            pen.polygon(
                [
                    (-neck, body.shoulder_y - 0.003),
                    (neck, body.shoulder_y - 0.003),
                    (0.0, body.shoulder_y + 0.105),
                ],
                (226, 226, 220),
            )
            for sign in (-1.0, 1.0):
                pen.polygon(
                    [
                        (sign * neck, body.shoulder_y - 0.003),
                        (sign * 0.004, body.shoulder_y + 0.11),
                        (sign * (neck + 0.03), body.shoulder_y + 0.045),
                    ],
                    dark,
                )
    elif not back and not side:
        collar = person.skin_rgb if person.upper_type == "t-shirt" else dark
        pen.ellipse(0.0, body.shoulder_y - 0.002, body.neck_w * 1.3, 0.02, collar)
    if person.lower_detail == "belt" and person.upper_type != "coat":
        _band(pen, profile, body.hem_y, 0.018, person.detail_rgb)
