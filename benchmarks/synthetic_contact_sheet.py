"""Contact sheet of procedural pedestrians, to check by eye that every attribute is readable.

Each row is one identity: its attributes as text, the four views on a plain background at the
rendered size, the same four views down-sampled to half size (32x64 by default) and scaled back
up, then one image per camera as the dataset would show it. Everything is enlarged ``--zoom``
times with nearest-neighbour scaling.

    python benchmarks/synthetic_contact_sheet.py --out /tmp/sheet.png --ids 12 --seed 0
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from vlreid.synthetic import make_identities
from vlreid.synthetic.camera import VIEWS, make_cameras
from vlreid.synthetic.renderer import PedestrianRenderer

LABEL_WIDTH = 150


def contact_sheet(
    ids: int, seed: int, cameras: int, zoom: int, height: int, width: int
) -> Image.Image:
    """The sheet as a PIL image (see the module docstring)."""
    renderer = PedestrianRenderer(height, width)
    camera_specs = make_cameras(cameras, seed)
    people = make_identities(ids, seed)
    rows = []
    for pid, person in people.items():
        rng = np.random.default_rng([seed, pid])
        plain = [
            renderer.render(
                person, camera_specs[0], rng, view=view, occlude=False, background=False
            )
            for view in VIEWS
        ]
        small = [
            np.asarray(
                Image.fromarray(image)
                .resize((width // 2, height // 2), Image.BILINEAR)
                .resize((width, height), Image.NEAREST)
            )
            for image in plain
        ]
        scenes = [renderer.render(person, camera, rng) for camera in camera_specs]
        gap = np.full((height, 4, 3), 255, np.uint8)
        strip = np.concatenate([*plain, gap, *small, gap, *scenes], axis=1)
        label = Image.new("RGB", (LABEL_WIDTH, height * zoom), "white")
        text = "\n".join(
            f"{key}: {value}" for key, value in {"pid": pid, **person.attributes}.items()
        )
        ImageDraw.Draw(label).multiline_text((4, 4), text, fill="black")
        enlarged = Image.fromarray(strip).resize(
            (strip.shape[1] * zoom, height * zoom), Image.NEAREST
        )
        row = Image.new("RGB", (LABEL_WIDTH + enlarged.width, enlarged.height), "white")
        row.paste(label, (0, 0))
        row.paste(enlarged, (LABEL_WIDTH, 0))
        rows.append(row)
    sheet = Image.new("RGB", (rows[0].width, sum(row.height for row in rows)), "white")
    for index, row in enumerate(rows):
        sheet.paste(row, (0, index * row.height))
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="PNG file to write")
    parser.add_argument("--ids", type=int, default=10, help="identities (rows)")
    parser.add_argument("--seed", type=int, default=0, help="identity and camera seed")
    parser.add_argument("--cameras", type=int, default=6, help="cameras (columns on the right)")
    parser.add_argument("--zoom", type=int, default=2, help="nearest-neighbour enlargement")
    parser.add_argument("--height", type=int, default=128, help="rendered image height")
    parser.add_argument("--width", type=int, default=64, help="rendered image width")
    args = parser.parse_args()
    sheet = contact_sheet(args.ids, args.seed, args.cameras, args.zoom, args.height, args.width)
    sheet.save(args.out)
    print(f"wrote {args.out} ({sheet.width}x{sheet.height})")


if __name__ == "__main__":
    main()
