"""Procedural pedestrians: what a synthetic person is made of, and how one is drawn at random.

A :class:`PersonSpec` holds two kinds of fields:

* the **attributes** of :data:`vlreid.attributes.PERSON_FIELDS` (gender, age, hair, garments,
  colours, shoes, bag), written with exactly the vocabulary words; captions are made from these;
* identity **traits** that the vocabulary does not name but that stay the same in every camera
  (skin tone, height, build, hair shade, the exact shade of each garment colour, a garment
  pattern and its position, a trouser detail, shoe soles, a walking cane for some old people).
  Traits make identities that share every attribute tell-apart, as real people are.

Colours come from the fixed palette :data:`COLOR_RGB` with a mild per-identity jitter that keeps
every colour nameable ("gray" stays darker than "white", "purple" redder than "blue").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

import numpy as np

from vlreid.attributes import PERSON_FIELDS
from vlreid.errors import ReIDError

RGB = tuple[int, int, int]

COLOR_RGB: dict[str, RGB] = {
    "black": (30, 30, 34),
    "white": (238, 238, 234),
    "gray": (128, 128, 130),
    "red": (205, 35, 35),
    "yellow": (238, 205, 40),
    "blue": (35, 80, 200),
    "green": (35, 145, 60),
    "purple": (128, 45, 160),
    "brown": (118, 72, 36),
    "pink": (242, 140, 185),
}
"""Base RGB of every colour word of the person vocabulary."""

HAIR_RGB: tuple[RGB, ...] = (
    (22, 18, 16),
    (58, 38, 24),
    (98, 62, 34),
    (128, 58, 30),
    (196, 160, 92),
)
"""Hair shades of young and adult people (black, dark brown, brown, auburn, blond)."""

OLD_HAIR_RGB: tuple[RGB, ...] = ((165, 165, 162), (196, 196, 192), (218, 218, 214))
"""Grey and white hair: the age cue shared by every old person."""

ACCENT_RGB: tuple[RGB, ...] = (
    (240, 240, 240),
    (20, 20, 24),
    (220, 40, 40),
    (250, 210, 30),
    (30, 90, 220),
    (30, 170, 80),
    (250, 130, 20),
    (0, 190, 200),
    (230, 60, 200),
)
"""Colours of patterns, trouser details and bags (identity traits)."""

PATTERNS: tuple[str, ...] = ("plain", "stripe", "two_stripes", "logo", "zip")
"""Upper-garment patterns (an identity trait, visible from every side except ``logo``)."""

LOWER_DETAILS: tuple[str, ...] = ("plain", "side_stripe", "cuffs", "belt")
"""Lower-garment details (an identity trait)."""

ATTRIBUTE_COLUMNS: tuple[str, ...] = tuple(PERSON_FIELDS)
"""Columns of ``attributes.parquet`` that hold vocabulary attributes (the caption fields)."""

_ATTRIBUTE_WEIGHTS: dict[str, dict[str, tuple[float, ...]]] = {
    # Mild, realistic priors; every combination stays possible.
    "male": {"hair": (0.8, 0.2), "lower_type": (0.6, 0.32, 0.08)},
    "female": {"hair": (0.3, 0.7), "lower_type": (0.4, 0.25, 0.35)},
}


@dataclass(frozen=True)
class PersonSpec:
    """One synthetic identity: vocabulary attributes plus identity traits.

    Attributes (vocabulary words of :data:`vlreid.attributes.PERSON_FIELDS`): ``gender``, ``age``,
    ``hair``, ``upper_type``, ``upper_color``, ``lower_type``, ``lower_color``, ``shoes``,
    ``bag``. Traits: the ``*_rgb`` colours actually painted, ``height`` (relative to a standard
    adult), ``build`` (width factor), ``pattern`` with its colour and vertical position
    (0 = shoulders, 1 = hem), ``lower_detail`` with its colour, ``sole_rgb`` and ``cane``.
    """

    gender: str
    age: str
    hair: str
    upper_type: str
    upper_color: str
    lower_type: str
    lower_color: str
    shoes: str
    bag: str
    skin_rgb: RGB
    hair_rgb: RGB
    upper_rgb: RGB
    lower_rgb: RGB
    shoe_rgb: RGB
    bag_rgb: RGB
    height: float
    build: float
    pattern: str
    pattern_rgb: RGB
    pattern_position: float
    lower_detail: str
    detail_rgb: RGB
    sole_rgb: RGB
    cane: bool

    @property
    def attributes(self) -> dict[str, str]:
        """The vocabulary attributes, keyed by :data:`ATTRIBUTE_COLUMNS`."""
        return {name: getattr(self, name) for name in ATTRIBUTE_COLUMNS}

    def to_row(self) -> dict[str, str | float | bool]:
        """A flat row for ``attributes.parquet`` (colours as ``#rrggbb`` strings)."""
        row: dict[str, str | float | bool] = {}
        for name, value in asdict(self).items():
            row[name] = _to_hex(value) if name.endswith("_rgb") else value
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, object]) -> PersonSpec:
        """Rebuild a person from a row written by :meth:`to_row` (extra keys are ignored)."""
        values: dict[str, object] = {}
        for field in fields(cls):
            if field.name not in row:
                raise ReIDError(f"attributes row lacks column {field.name!r}; got {sorted(row)}")
            value = row[field.name]
            if field.name.endswith("_rgb"):
                value = _from_hex(str(value))
            elif field.name in ("height", "build", "pattern_position"):
                value = float(value)  # type: ignore[arg-type]
            elif field.name == "cane":
                value = bool(value)
            values[field.name] = value
        return cls(**values)  # type: ignore[arg-type]


TRAIT_COLUMNS: tuple[str, ...] = tuple(
    field.name for field in fields(PersonSpec) if field.name not in ATTRIBUTE_COLUMNS
)
"""Columns of ``attributes.parquet`` that hold identity traits (not caption fields)."""


def shade(rgb: RGB, factor: float) -> RGB:
    """``rgb`` scaled by ``factor`` (darker below 1), clipped to 0-255."""
    return (
        min(255, int(rgb[0] * factor)),
        min(255, int(rgb[1] * factor)),
        min(255, int(rgb[2] * factor)),
    )


def _to_hex(rgb: RGB) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _from_hex(text: str) -> RGB:
    if len(text) != 7 or not text.startswith("#"):
        raise ReIDError(f"expected a colour written as #rrggbb, got {text!r}")
    return (int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16))


def _jitter(rng: np.random.Generator, rgb: RGB, shade: float = 0.1, offset: int = 8) -> RGB:
    """A per-identity shade of ``rgb``: one brightness factor plus small per-channel offsets."""
    factor = 1.0 + rng.uniform(-shade, shade)
    channel_offset = rng.integers(-offset, offset + 1, size=3)
    value = np.clip(np.asarray(rgb) * factor + channel_offset, 0, 255)
    return (int(value[0]), int(value[1]), int(value[2]))


def _contrasting(rng: np.random.Generator, avoid: list[RGB], minimum: float = 120.0) -> RGB:
    """An accent colour at least ``minimum`` (RGB distance) away from every colour in ``avoid``."""
    candidates = [
        rgb
        for rgb in ACCENT_RGB
        if all(np.linalg.norm(np.subtract(rgb, other)) >= minimum for other in avoid)
    ]
    pool = candidates or list(ACCENT_RGB)
    return pool[int(rng.integers(len(pool)))]


def sample_attributes(rng: np.random.Generator, **fixed: str) -> dict[str, str]:
    """Draw vocabulary attributes, with mild gender priors on hair and lower garment.

    Args:
        rng: Source of randomness.
        **fixed: Field values to force (for example ``bag="backpack"``), each from the vocabulary.

    Returns:
        One value per :data:`vlreid.attributes.PERSON_FIELDS` key.

    Raises:
        ReIDError: If a fixed field or value is not in the vocabulary.
    """
    for name, value in fixed.items():
        if name not in PERSON_FIELDS:
            raise ReIDError(f"unknown person field {name!r}; expected one of {list(PERSON_FIELDS)}")
        if value not in PERSON_FIELDS[name]:
            raise ReIDError(f"{name}={value!r} is not in the vocabulary {PERSON_FIELDS[name]}")
    attributes: dict[str, str] = {}
    age_weights = {"age": (0.2, 0.6, 0.2), "bag": (0.34, 0.24, 0.21, 0.21)}
    for name, values in PERSON_FIELDS.items():
        if name in fixed:
            attributes[name] = fixed[name]
            continue
        weights = _ATTRIBUTE_WEIGHTS.get(attributes.get("gender", ""), {}).get(name)
        weights = weights or age_weights.get(name) or (1.0,) * len(values)
        probabilities = np.asarray(weights) / np.sum(weights)
        attributes[name] = values[int(rng.choice(len(values), p=probabilities))]
    return attributes


def sample_person(
    rng: np.random.Generator, attributes: Mapping[str, str] | None = None
) -> PersonSpec:
    """Draw a random identity.

    Args:
        rng: Source of randomness.
        attributes: Vocabulary attributes to use (all or some fields); the others are drawn.

    Returns:
        A person whose traits are drawn independently of the other identities.
    """
    chosen = sample_attributes(rng, **dict(attributes or {}))
    age = chosen["age"]
    skin_light = rng.uniform(0.0, 1.0)
    skin = np.asarray((240, 206, 180)) * (1 - skin_light) + np.asarray((98, 64, 44)) * skin_light
    skin_rgb = _jitter(rng, (int(skin[0]), int(skin[1]), int(skin[2])), shade=0.04, offset=6)
    if age == "old":
        hair_rgb = _jitter(rng, OLD_HAIR_RGB[int(rng.integers(3))], shade=0.04, offset=3)
    else:
        hair_rgb = _jitter(rng, HAIR_RGB[int(rng.integers(len(HAIR_RGB)))], shade=0.1, offset=6)
    upper_rgb = _jitter(rng, COLOR_RGB[chosen["upper_color"]])
    lower_rgb = _jitter(rng, COLOR_RGB[chosen["lower_color"]])
    base_height = {"young": 0.76, "adult": 0.97, "old": 0.93}[age]
    height = (
        base_height + (0.02 if chosen["gender"] == "male" else -0.02) + rng.uniform(-0.04, 0.04)
    )
    return PersonSpec(
        **chosen,
        skin_rgb=skin_rgb,
        hair_rgb=hair_rgb,
        upper_rgb=upper_rgb,
        lower_rgb=lower_rgb,
        shoe_rgb=_jitter(rng, COLOR_RGB[chosen["shoes"]], shade=0.08, offset=6),
        bag_rgb=_contrasting(rng, [upper_rgb, lower_rgb]),
        height=float(round(height, 4)),
        build=float(round(rng.uniform(0.9, 1.12), 4)),
        pattern=PATTERNS[int(rng.integers(len(PATTERNS)))],
        pattern_rgb=_contrasting(rng, [upper_rgb]),
        pattern_position=float(round(rng.uniform(0.25, 0.75), 4)),
        lower_detail=LOWER_DETAILS[int(rng.integers(len(LOWER_DETAILS)))],
        detail_rgb=_contrasting(rng, [lower_rgb]),
        sole_rgb=(235, 235, 230) if rng.random() < 0.5 else (40, 36, 34),
        cane=bool(age == "old" and rng.random() < 0.6),
    )
