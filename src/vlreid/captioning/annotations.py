"""Market-1501 and DukeMTMC-reID attribute annotations (Lin et al., "Improving Person
Re-identification by Attribute and Identity Learning", Pattern Recognition 2019), mapped to the
person template's vocabulary (:data:`vlreid.attributes.PERSON_FIELDS`).

The files ``market_attribute.mat`` (27 attributes, 751 train + 750 test identities) and
``duke_attribute.mat`` (23 attributes, 702 train + 1,110 test identities) hold one struct per
split whose fields are ``1 x N`` code arrays (``no(1)``/``yes(2)`` unless noted) and
``image_index``, the 4-digit pids. The mapping, field by field (anything not listed is left
unknown, so the caption omits it and the audit does not count it):

=============  ================================================================================
field          mapping
=============  ================================================================================
gender         ``gender``: male(1) -> male, female(2) -> female
age            Market ``age``: young(1), teenager(2) -> young; adult(3) -> adult; old(4) -> old
hair           Market ``hair``: short(1) -> short, long(2) -> long
upper_type     Market ``up`` short sleeve(2) -> t-shirt (long sleeve: unknown);
               Duke ``top`` long upper-body clothing(2) -> coat (short: unknown)
upper_color    the one ``up<colour>`` flag set to yes, if the colour is in the vocabulary
               (Duke's brown is not: unknown); none or several set: unknown
lower_type     Market ``clothes`` dress(1) -> skirt; pants(2) with ``down`` long(1) -> trousers,
               short(2) -> shorts
lower_color    the one ``down<colour>`` flag set to yes, if in the vocabulary (Market's purple
               and yellow, Duke's red are not: unknown)
shoes          Duke ``shoes``: dark(1) -> black, light(2) -> white
bag            ``backpack`` yes -> backpack, else ``bag`` yes -> shoulder bag, else ``handbag``
               yes -> handbag, else none
=============  ================================================================================
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vlreid.errors import DataFileError
from vlreid.templates import Template

MAT_KEYS: tuple[str, ...] = ("market_attribute", "duke_attribute")
AGES = {1: "young", 2: "young", 3: "adult", 4: "old"}


def load_annotation_mat(path: Path, template: Template) -> dict[int, dict[str, str]]:
    """Read a Market-1501 / DukeMTMC-reID attribute ``.mat`` file as per-pid labels.

    Args:
        path: ``market_attribute.mat`` or ``duke_attribute.mat``.
        template: The person template (its vocabulary bounds the mapped values).

    Returns:
        pid -> {field: value} for the train and test identities.

    Raises:
        DataFileError: Not one of these files, or not the person template.
    """
    from scipy.io import loadmat

    if "upper_color" not in template.fields:
        raise DataFileError(f"{path}: person attribute annotations need the person template")
    try:
        content = loadmat(path)
    except (OSError, ValueError, NotImplementedError) as error:
        raise DataFileError(f"cannot read attribute annotations {path}: {error}") from error
    key = next((name for name in MAT_KEYS if name in content), None)
    if key is None:
        found = sorted(name for name in content if not name.startswith("__"))
        raise DataFileError(
            f"{path}: expected a struct named {' or '.join(MAT_KEYS)} (the Market-1501 / "
            f"DukeMTMC-reID attribute files); found {found}"
        )
    splits = content[key][0, 0]
    labels: dict[int, dict[str, str]] = {}
    for split in splits.dtype.names:
        table = splits[split][0, 0]
        pids = [int(np.ravel(entry)[0]) for entry in np.ravel(table["image_index"])]
        codes = {
            name: np.ravel(table[name]).astype(int)
            for name in table.dtype.names
            if name != "image_index"
        }
        for index, pid in enumerate(pids):
            row = {name: int(values[index]) for name, values in codes.items()}
            labels[pid] = _restrict(map_codes(row), template)
    return labels


def map_codes(codes: dict[str, int]) -> dict[str, str]:
    """Map one identity's annotation codes to template values (see the module docstring)."""
    fields: dict[str, str] = {}
    if codes.get("gender") in (1, 2):
        fields["gender"] = "male" if codes["gender"] == 1 else "female"
    if codes.get("age") in AGES:
        fields["age"] = AGES[codes["age"]]
    if codes.get("hair") in (1, 2):
        fields["hair"] = "short" if codes["hair"] == 1 else "long"
    if codes.get("up") == 2:
        fields["upper_type"] = "t-shirt"
    if codes.get("top") == 2:
        fields["upper_type"] = "coat"
    if codes.get("clothes") == 1:
        fields["lower_type"] = "skirt"
    elif codes.get("clothes") == 2 and codes.get("down") in (1, 2):
        fields["lower_type"] = "trousers" if codes["down"] == 1 else "shorts"
    if codes.get("shoes") in (1, 2):
        fields["shoes"] = "black" if codes["shoes"] == 1 else "white"
    for prefix, field in (("up", "upper_color"), ("down", "lower_color")):
        colours = [
            name[len(prefix) :]
            for name, code in codes.items()
            if name.startswith(prefix) and name not in ("up", "down") and code == 2
        ]
        if len(colours) == 1:
            fields[field] = colours[0]
    carried = [("backpack", "backpack"), ("bag", "shoulder bag"), ("handbag", "handbag")]
    if all(codes.get(name) in (1, 2) for name, _ in carried):
        fields["bag"] = next((value for name, value in carried if codes[name] == 2), "none")
    return fields


def _restrict(fields: dict[str, Any], template: Template) -> dict[str, str]:
    """Drop values outside the template's vocabulary (Duke's brown tops, Market's purple legs)."""
    return {
        name: value
        for name, value in fields.items()
        if name in template.fields and value in template.fields[name].values
    }
