"""The attribute vocabulary shared by the synthetic renderer, the caption templates and the audit.

A person is described by the fields of :data:`PERSON_FIELDS`, each with a closed list of values.
The synthetic dataset draws identities from these lists and stores them in ``attributes.parquet``;
the ``attributes`` captioner renders them into the caption template; the answer parser maps a
captioner's free text back to them; ``reid captions audit`` compares parsed fields with labels.
Values are plain lower-case English words so that captions stay short and CLIP-tokenizable.
"""

from __future__ import annotations

PERSON_FIELDS: dict[str, tuple[str, ...]] = {
    "gender": ("male", "female"),
    "age": ("young", "adult", "old"),
    "hair": ("short", "long"),
    "upper_type": ("t-shirt", "sweater", "coat"),
    "upper_color": ("black", "white", "red", "yellow", "blue", "green", "gray", "purple"),
    "lower_type": ("trousers", "shorts", "skirt"),
    "lower_color": ("black", "white", "blue", "gray", "brown", "green", "pink"),
    "shoes": ("black", "white", "brown"),
    "bag": ("none", "backpack", "handbag", "shoulder bag"),
}
"""Person fields and their allowed values (the first value is not a default)."""

VEHICLE_FIELDS: dict[str, tuple[str, ...]] = {
    "color": ("black", "white", "gray", "red", "blue", "yellow", "green", "brown", "silver"),
    "type": ("sedan", "suv", "hatchback", "mpv", "pickup", "van", "bus", "truck"),
}
"""Vehicle fields (VeRi-776 colour and type vocabulary) for the vehicle template."""
