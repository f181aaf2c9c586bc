"""Drawing one procedural pedestrian with PIL primitives (front, back and side views).

Coordinates are in fractions of the person's height: ``y`` goes from 0 at the top of the head to
1 at the soles, ``x`` from the body's vertical axis (positive to the image right for a front
view). :class:`~vlreid.synthetic.pen.Pen` maps them to canvas pixels, mirroring for back and left
views.

The attribute cues are drawn to be read at 32x64 pixels:

* gender: broad shoulders and narrow hips (male) versus narrow shoulders and wide hips (female),
  a beard shadow on adult and old men, a bust and hip curve in side view;
* age: young people are shorter with a larger head; old people have grey or white hair, a stoop
  and, for some, a cane;
* upper type: bare forearms (t-shirt), full sleeves ending at the waist (sweater), or a long coat
  with lapels that covers the hips;
* lower type: full-length trouser legs, shorts ending above bare knees, or a flared skirt;
* bag: a backpack (a large block over the back; straps and a chest strap from the front; a block
  behind the shoulders from the side), a handbag hanging below one hand, or a shoulder bag on a
  diagonal strap with the bag at the hip.
"""

from __future__ import annotations

from PIL import ImageDraw

from vlreid.synthetic.body import Body, draw_arm, draw_bags, draw_head, make_body
from vlreid.synthetic.clothes import draw_lower, draw_torso
from vlreid.synthetic.pen import Pen
from vlreid.synthetic.person import PersonSpec, shade


def draw_person(
    draw: ImageDraw.ImageDraw,
    person: PersonSpec,
    view: str,
    center_x: float,
    feet_y: float,
    height_pixels: float,
    stride: float = 0.0,
) -> None:
    """Draw a person standing with their soles at ``feet_y``.

    Args:
        draw: PIL drawing context of the canvas.
        person: Who to draw.
        view: ``front``, ``back``, ``left`` or ``right``.
        center_x: Canvas x of the body axis.
        feet_y: Canvas y of the soles.
        height_pixels: The person's height in pixels.
        stride: Walking phase in [-1, 1] (legs and arm swing in side views, stance in others).
    """
    mirror = -1.0 if view in ("back", "left") else 1.0
    pen = Pen(draw, center_x, feet_y - height_pixels, height_pixels, mirror)
    body = make_body(person)
    if view in ("front", "back"):
        _draw_frontal(pen, person, body, back=view == "back", stance=stride)
    else:
        _draw_side(pen, person, body, stride=stride)


def _draw_frontal(pen: Pen, person: PersonSpec, body: Body, back: bool, stance: float) -> None:
    """Front or back view (the back view is the mirrored front silhouette)."""
    if person.bag == "backpack" and not back:
        # The top of the pack shows behind the shoulders.
        width = body.shoulder_w * 0.72
        pen.polygon(
            [
                (-width, body.shoulder_y - 0.022),
                (width, body.shoulder_y - 0.022),
                (width, body.waist_y),
                (-width, body.waist_y),
            ],
            shade(person.bag_rgb, 0.8),
        )
    if person.hair == "long" and not back:
        hair_width = body.head_w * 1.3
        pen.polygon(
            [
                (-hair_width, body.head_cy),
                (hair_width, body.head_cy),
                (hair_width * 1.1, body.shoulder_y + 0.1),
                (-hair_width * 1.1, body.shoulder_y + 0.1),
            ],
            person.hair_rgb,
        )
    draw_lower(pen, person, body, side=False, stride=stance)
    draw_torso(pen, person, body, side=False, back=back)
    draw_bags(pen, person, body, back=back, stage="torso")
    for side in (-1.0, 1.0):
        draw_arm(pen, person, body, side, side_view=False, swing=0.0, far=False)
    draw_bags(pen, person, body, back=back, stage="hands")
    draw_head(pen, person, body, view="back" if back else "front")


def _draw_side(pen: Pen, person: PersonSpec, body: Body, stride: float) -> None:
    """Profile view facing the image right (mirrored by the pen for ``left``)."""
    swing = 0.09 * stride
    draw_arm(pen, person, body, 1.0, side_view=True, swing=swing, far=True)
    if person.bag == "backpack":
        back_x = -body.depth_back - 0.012
        pen.polygon(
            [
                (back_x - 0.07, body.shoulder_y - 0.01),
                (back_x + 0.01, body.shoulder_y - 0.02),
                (back_x + 0.01, body.waist_y + 0.05),
                (back_x - 0.075, body.waist_y + 0.04),
            ],
            person.bag_rgb,
            shade(person.bag_rgb, 0.55),
        )
    draw_lower(pen, person, body, side=True, stride=stride)
    draw_torso(pen, person, body, side=True, back=False)
    draw_bags(pen, person, body, back=False, stage="side_torso")
    if person.hair == "long":  # falls over the back of the garment
        pen.polygon(
            [
                (body.lean - body.head_w * 1.15, body.head_cy - body.head_h * 0.2),
                (body.lean + 0.005, body.head_cy),
                (body.lean - 0.004, body.shoulder_y + 0.14),
                (body.lean - body.head_w * 1.35, body.shoulder_y + 0.14),
            ],
            person.hair_rgb,
        )
    draw_arm(pen, person, body, 1.0, side_view=True, swing=-swing, far=False)
    draw_bags(pen, person, body, back=False, stage="side_hands", swing=-swing)
    draw_head(pen, person, body, view="side")
