"""Body proportions, arms, head and carried items of a procedural pedestrian.

Used by :mod:`vlreid.synthetic.figure`; coordinates are fractions of the person's height
(``y`` 0 at the top of the head, 1 at the soles). Side views face the image right.
"""

from __future__ import annotations

from dataclasses import dataclass

from vlreid.synthetic.pen import Pen
from vlreid.synthetic.person import RGB, PersonSpec, shade

_CANE_RGB: RGB = (72, 46, 26)
_LIPS_RGB: RGB = (178, 58, 70)
_EYE_RGB: RGB = (25, 20, 20)


@dataclass(frozen=True)
class Body:
    """Landmark heights and half-widths of one person (fractions of their height)."""

    head_h: float
    head_w: float
    head_cy: float
    neck_w: float
    shoulder_y: float
    waist_y: float
    crotch_y: float
    knee_y: float
    ankle_y: float
    shoulder_w: float
    waist_w: float
    hip_w: float
    arm_w: float
    depth_front: float
    depth_back: float
    hem_y: float
    lean: float


def make_body(person: PersonSpec) -> Body:
    """Proportions from gender (shoulders versus hips), age (head size, stoop) and build."""
    young, old, male = person.age == "young", person.age == "old", person.gender == "male"
    head_h = 0.158 if young else 0.128
    stoop = 0.016 if old else 0.0
    shoulder_y = head_h + 0.032 + stoop * 0.5
    waist_y = shoulder_y + (0.225 if young else 0.235)
    crotch_y = waist_y + 0.105
    width = person.build * (0.95 if young else 1.0)
    return Body(
        head_h=head_h,
        head_w=head_h * 0.4,
        head_cy=head_h / 2 + stoop,
        neck_w=head_h * (0.2 if male else 0.16),
        shoulder_y=shoulder_y,
        waist_y=waist_y,
        crotch_y=crotch_y,
        knee_y=crotch_y + (1.0 - crotch_y) * 0.47,
        ankle_y=0.958,
        shoulder_w=(0.115 if male else 0.076) * width,
        waist_w=(0.088 if male else 0.06) * width,
        hip_w=(0.08 if male else 0.106) * width,
        arm_w=(0.046 if male else 0.038) * width,
        depth_front=(0.054 if male else 0.046) * width,
        depth_back=(0.05 if male else 0.044) * width,
        hem_y=crotch_y + 0.08 if person.upper_type == "coat" else crotch_y - 0.012,
        lean=0.032 if old else 0.0,
    )


def hand_position(body: Body, side: float, side_view: bool, swing: float) -> tuple[float, float]:
    """Body coordinates of the wrist of the arm on ``side`` (-1 or 1)."""
    wrist_y = body.shoulder_y + 0.3
    if side_view:
        return (swing + body.lean * 0.2, wrist_y)
    reach = max(body.shoulder_w - 0.012, body.hip_w + body.arm_w * 0.5 + 0.012)
    return (side * reach, wrist_y)


def draw_arm(
    pen: Pen, person: PersonSpec, body: Body, side: float, side_view: bool, swing: float, far: bool
) -> None:
    """One arm: bare skin, a sleeve (short, full or coat), the hand."""
    light = 0.8 if far else 1.0
    wrist = hand_position(body, side, side_view, swing)
    if side_view:
        shoulder = (body.lean * 0.6, body.shoulder_y + 0.025)
        elbow = (swing * 0.5 + body.lean * 0.35, body.shoulder_y + 0.165)
    else:
        shoulder = (side * (body.shoulder_w - 0.016), body.shoulder_y + 0.022)
        elbow = ((shoulder[0] + wrist[0]) / 2 + side * 0.006, body.shoulder_y + 0.165)
    chain = [shoulder, elbow, wrist]
    width = body.arm_w
    skin, cloth = shade(person.skin_rgb, light), shade(person.upper_rgb, light)
    pen.limb(chain, [width * 1.05, width * 0.95, width * 0.78], 0.0, 1.0, skin)
    if person.upper_type == "t-shirt":
        pen.limb(
            chain,
            [width * 1.45, width * 1.3, width * 1.2],
            0.0,
            body.shoulder_y + 0.095,
            cloth,
            shade(cloth, 0.65),
        )
    else:
        scale = 1.2 if person.upper_type == "coat" else 1.0
        widths = [width * 1.25 * scale, width * 1.08 * scale, width * 0.92 * scale]
        pen.limb(chain, widths, 0.0, wrist[1], cloth, shade(cloth, 0.65))
        pen.limb(chain, widths, wrist[1] - 0.018, wrist[1], shade(cloth, 0.62))
    pen.ellipse(wrist[0], wrist[1] + 0.02, width * 0.5, width * 0.68, skin)


def draw_bags(
    pen: Pen, person: PersonSpec, body: Body, back: bool, stage: str, swing: float = 0.0
) -> None:
    """Bags and cane at one drawing stage: ``torso``/``hands`` (front, back), ``side_*``.

    ``swing`` is the near arm's swing in side views (the handbag and cane follow the hand).
    """
    bag, dark = person.bag_rgb, shade(person.bag_rgb, 0.55)
    sy, side_view = body.shoulder_y, stage.startswith("side")
    if stage in ("torso", "side_torso"):
        if person.bag == "backpack" and back:
            width, bottom = max(body.shoulder_w * 0.82, 0.072), body.waist_y + 0.05
            pen.polygon(
                [
                    (-width + 0.015, sy - 0.024),
                    (width - 0.015, sy - 0.024),
                    (width, sy),
                    (width + 0.004, bottom),
                    (-width - 0.004, bottom),
                    (-width, sy),
                ],
                bag,
                dark,
            )
            pen.polygon(
                [
                    (-width * 0.7, body.waist_y - 0.05),
                    (width * 0.7, body.waist_y - 0.05),
                    (width * 0.7, bottom - 0.012),
                    (-width * 0.7, bottom - 0.012),
                ],
                shade(bag, 0.75),
                dark,
            )
        elif person.bag == "backpack" and not side_view:
            for sign in (-1.0, 1.0):
                pen.line(
                    [
                        (sign * body.shoulder_w * 0.5, sy - 0.004),
                        (sign * body.waist_w * 0.72, body.waist_y + 0.02),
                    ],
                    0.026,
                    shade(bag, 0.85),
                )
            pen.line(
                [(-body.waist_w * 0.62, sy + 0.085), (body.waist_w * 0.62, sy + 0.085)], 0.012, dark
            )
        elif person.bag == "backpack":
            pen.line(
                [
                    (-body.depth_back + 0.01, sy + 0.003),
                    (body.depth_front * 0.5, sy - 0.004),
                    (body.depth_front + 0.002, sy + 0.06),
                    (body.depth_front - 0.006, body.waist_y),
                ],
                0.02,
                shade(bag, 0.85),
            )
        elif person.bag == "shoulder bag":
            start = (body.depth_back * -0.3, sy) if side_view else (-body.shoulder_w * 0.55, sy)
            end = (
                (body.depth_front * 0.6, body.crotch_y - 0.08)
                if side_view
                else (body.hip_w + 0.015, body.crotch_y - 0.075)
            )
            pen.line([start, end], 0.022, shade(bag, 0.8))
        return
    x_hand, y_hand = hand_position(body, 1.0, side_view, swing)
    if person.bag == "shoulder bag":
        x0 = -0.035 if side_view else body.hip_w - 0.025
        x1 = x0 + 0.095
        top, bottom = body.crotch_y - 0.1, body.crotch_y + 0.005
        pen.polygon([(x0, top), (x1, top), (x1, bottom), (x0, bottom)], bag, dark)
        pen.polygon(
            [(x0, top), (x1, top), (x1, top + 0.04), (x0, top + 0.04)], shade(bag, 0.78), dark
        )
    elif person.bag == "handbag":
        bag_top = y_hand + 0.065
        pen.line(
            [(x_hand - 0.026, bag_top), (x_hand, y_hand + 0.012), (x_hand + 0.026, bag_top)],
            0.009,
            dark,
        )
        pen.polygon(
            [
                (x_hand - 0.042, bag_top),
                (x_hand + 0.042, bag_top),
                (x_hand + 0.058, bag_top + 0.1),
                (x_hand - 0.058, bag_top + 0.1),
            ],
            bag,
            dark,
        )
    if person.cane:
        if side_view:
            start = (x_hand - (0.03 if person.bag == "handbag" else 0.0), y_hand + 0.02)
            end = (start[0] + 0.075, 1.0)
        else:
            start = (-x_hand, y_hand + 0.02)
            end = (-x_hand - 0.025, 1.0)
        pen.line([start, end], 0.013, _CANE_RGB)
        pen.line([(start[0] - 0.015, start[1]), (start[0] + 0.02, start[1])], 0.013, _CANE_RGB)


def draw_head(pen: Pen, person: PersonSpec, body: Body, view: str) -> None:
    """Neck, head, hair, eyes; a beard shadow on adult and old men, lips on women."""
    hair, skin = person.hair_rgb, person.skin_rgb
    x = body.lean if view == "side" else 0.0
    radius_x = body.head_h * 0.44 if view == "side" else body.head_w
    radius_y = body.head_h / 2
    cy, hh = body.head_cy, body.head_h
    neck_x = x * 0.7
    pen.polygon(
        [
            (neck_x - body.neck_w, cy + hh * 0.25),
            (neck_x + body.neck_w, cy + hh * 0.25),
            (neck_x + body.neck_w, body.shoulder_y + 0.008),
            (neck_x - body.neck_w, body.shoulder_y + 0.008),
        ],
        skin,
    )
    if person.upper_type == "coat":  # an upturned collar around the neck, seen from every side
        collar = body.neck_w * 1.7
        pen.polygon(
            [
                (neck_x - collar, body.shoulder_y - 0.03),
                (neck_x + collar, body.shoulder_y - 0.03),
                (neck_x + collar * 1.15, body.shoulder_y + 0.012),
                (neck_x - collar * 1.15, body.shoulder_y + 0.012),
            ],
            shade(person.upper_rgb, 0.55),
        )
    pen.ellipse(x, cy, radius_x, radius_y, skin)
    if view == "back":
        pen.ellipse(0.0, cy - hh * 0.05, radius_x * 1.05, radius_y * 0.95, hair)
        if person.hair == "long":
            width = body.head_w * 1.3
            pen.polygon(
                [
                    (-width, cy - hh * 0.2),
                    (width, cy - hh * 0.2),
                    (width * 1.2, body.shoulder_y + 0.15),
                    (-width * 1.2, body.shoulder_y + 0.15),
                ],
                hair,
            )
        return
    forward = 0.22 if view == "side" else 0.0
    pen.ellipse(
        x - radius_x * forward * 0.7, cy - hh * 0.12, radius_x * 1.06, radius_y * 0.84, hair
    )
    face_x = x + radius_x * forward
    pen.ellipse(
        face_x, cy + hh * 0.1, radius_x * (0.8 if view == "side" else 0.9), radius_y * 0.8, skin
    )
    if view == "side":
        tip = x + radius_x
        pen.polygon(
            [
                (tip - 0.004, cy - hh * 0.08),
                (tip + 0.012, cy + hh * 0.1),
                (tip - 0.004, cy + hh * 0.14),
            ],
            skin,
        )
        eyes = [(x + radius_x * 0.55, cy - hh * 0.02)]
    else:
        eyes = [(-radius_x * 0.4, cy - hh * 0.02), (radius_x * 0.4, cy - hh * 0.02)]
        if person.hair == "long":
            for sign in (-1.0, 1.0):
                # Long hair falls in front of the shoulders.
                bottom = body.shoulder_y + 0.075
                pen.polygon(
                    [
                        (sign * radius_x * 0.72, cy - hh * 0.3),
                        (sign * radius_x * 1.22, cy - hh * 0.3),
                        (sign * radius_x * 1.6, bottom),
                        (sign * radius_x * 0.95, bottom),
                        (sign * radius_x * 0.85, cy + hh * 0.45),
                    ],
                    hair,
                )
    for eye_x, eye_y in eyes:
        pen.ellipse(eye_x, eye_y, 0.007, 0.006, _EYE_RGB)
    mouth_x = x + radius_x * 0.7 if view == "side" else 0.0
    if person.gender == "male" and person.age != "young":
        mixed = (hair[0] + skin[0]) // 2, (hair[1] + skin[1]) // 2, (hair[2] + skin[2]) // 2
        beard = shade(mixed, 0.72)
        pen.ellipse(
            face_x + (radius_x * 0.12 if view == "side" else 0.0),
            cy + hh * 0.37,
            radius_x * (0.55 if view == "side" else 0.72),
            radius_y * 0.24,
            beard,
        )
    elif person.gender == "female":
        pen.ellipse(mouth_x, cy + hh * 0.27, 0.012 if view == "front" else 0.007, 0.006, _LIPS_RGB)
