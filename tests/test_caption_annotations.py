"""Market-1501 / DukeMTMC-reID attribute .mat files mapped to the person vocabulary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from vlreid.captioning.attributes import load_attribute_labels
from vlreid.errors import DataFileError
from vlreid.templates import load_template

MARKET_COLOURS_UP = ["black", "white", "red", "purple", "yellow", "gray", "blue", "green"]
MARKET_COLOURS_DOWN = ["black", "white", "pink", "purple", "yellow", "gray", "blue", "green",
                       "brown"]  # fmt: skip
DUKE_COLOURS_UP = ["black", "white", "red", "purple", "gray", "blue", "green", "brown"]
DUKE_COLOURS_DOWN = ["black", "white", "red", "gray", "blue", "green", "brown"]


def split_struct(pids: list[str], codes: dict[str, list[int]]) -> dict[str, object]:
    """One split as the files store it: ``1 x N`` code arrays and a cell array of pids."""
    struct: dict[str, object] = {name: np.array([values]) for name, values in codes.items()}
    struct["image_index"] = np.array(pids, dtype=object)
    return struct


def colour_flags(prefix: str, colours: list[str], chosen: list[str | None]) -> dict[str, list]:
    return {f"{prefix}{colour}": [2 if colour == pick else 1 for pick in chosen]
            for colour in colours}  # fmt: skip


def write_market(path: Path) -> Path:
    # pid 2: young man, short hair, short sleeves, red top, long pants, blue, backpack.
    # pid 7: old woman, long hair, long sleeves, purple top, dress, purple (unknown), bag+handbag.
    train = {
        "gender": [1, 2], "age": [2, 4], "hair": [1, 2], "up": [2, 1], "down": [1, 1],
        "clothes": [2, 1], "hat": [1, 2], "backpack": [2, 1], "bag": [1, 2], "handbag": [1, 2],
        **colour_flags("up", MARKET_COLOURS_UP, ["red", "purple"]),
        **colour_flags("down", MARKET_COLOURS_DOWN, ["blue", "purple"]),
    }  # fmt: skip
    # pid 1400: adult man, short pants, no colour flag set, nothing carried.
    test = {
        "gender": [1], "age": [3], "hair": [1], "up": [1], "down": [2], "clothes": [2],
        "hat": [1], "backpack": [1], "bag": [1], "handbag": [1],
        **colour_flags("up", MARKET_COLOURS_UP, [None]),
        **colour_flags("down", MARKET_COLOURS_DOWN, ["gray"]),
    }  # fmt: skip
    content = {"train": split_struct(["0002", "0007"], train),
               "test": split_struct(["1400"], test)}  # fmt: skip
    savemat(path, {"market_attribute": content})
    return path


def test_market_attribute_file(tmp_path):
    labels = load_attribute_labels(write_market(tmp_path / "market_attribute.mat"),
                                   load_template("person"))  # fmt: skip
    assert labels == {
        2: {"gender": "male", "age": "young", "hair": "short", "upper_type": "t-shirt",
            "upper_color": "red", "lower_type": "trousers", "lower_color": "blue",
            "bag": "backpack"},
        7: {"gender": "female", "age": "old", "hair": "long", "upper_color": "purple",
            "lower_type": "skirt", "bag": "shoulder bag"},
        1400: {"gender": "male", "age": "adult", "hair": "short", "lower_type": "shorts",
               "lower_color": "gray", "bag": "none"},
    }  # fmt: skip


def test_duke_attribute_file(tmp_path):
    train = {
        "gender": [2], "top": [2], "boots": [1], "hat": [1], "backpack": [1], "bag": [1],
        "handbag": [2], "shoes": [2],
        **colour_flags("up", DUKE_COLOURS_UP, ["brown"]),
        **colour_flags("down", DUKE_COLOURS_DOWN, ["black"]),
    }  # fmt: skip
    test = {
        "gender": [1], "top": [1], "boots": [2], "hat": [1], "backpack": [1], "bag": [1],
        "handbag": [1], "shoes": [1],
        **colour_flags("up", DUKE_COLOURS_UP, ["green"]),
        **colour_flags("down", DUKE_COLOURS_DOWN, ["red"]),
    }  # fmt: skip
    path = tmp_path / "duke_attribute.mat"
    savemat(path, {"duke_attribute": {"train": split_struct(["0005"], train),
                                      "test": split_struct(["3410"], test)}})  # fmt: skip
    labels = load_attribute_labels(path, load_template("person"))
    assert labels == {
        5: {"gender": "female", "upper_type": "coat", "lower_color": "black", "shoes": "white",
            "bag": "handbag"},
        3410: {"gender": "male", "upper_color": "green", "shoes": "black", "bag": "none"},
    }  # fmt: skip


def test_other_mat_files_are_refused(tmp_path):
    path = tmp_path / "other.mat"
    savemat(path, {"features": np.zeros((2, 2))})
    with pytest.raises(DataFileError, match="expected a struct named market_attribute or duke"):
        load_attribute_labels(path, load_template("person"))
    market = write_market(tmp_path / "market_attribute.mat")
    with pytest.raises(DataFileError, match="need the person template"):
        load_attribute_labels(market, load_template("vehicle"))
