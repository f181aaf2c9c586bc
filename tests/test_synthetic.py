"""The procedural pedestrian dataset (``reid data synth``) and its renderer."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from vlreid.attributes import PERSON_FIELDS
from vlreid.cli import app
from vlreid.errors import ReIDError
from vlreid.synthetic import (
    ATTRIBUTES_FILE,
    SPLIT_FOLDERS,
    make_identities,
    make_synthetic_dataset,
)
from vlreid.synthetic.camera import VIEWS, make_cameras
from vlreid.synthetic.person import (
    ATTRIBUTE_COLUMNS,
    TRAIT_COLUMNS,
    PersonSpec,
    sample_attributes,
    sample_person,
)
from vlreid.synthetic.renderer import PedestrianRenderer

MARKET_NAME = re.compile(r"^(\d{4})_c(\d)s(\d)_(\d{6})_(\d{2})\.jpg$")
SMALL = {"ids": 8, "cameras": 3, "images_per_camera": 2}


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _images(root: Path, split: str) -> list[tuple[int, int, Path]]:
    """(pid, 1-based camera, path) of every image of a split, names checked by the regex."""
    rows = []
    for path in sorted((root / SPLIT_FOLDERS[split]).iterdir()):
        match = MARKET_NAME.match(path.name)
        assert match is not None, f"not a Market-1501 name: {path.name}"
        rows.append((int(match.group(1)), int(match.group(2)), path))
    return rows


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 identities in 4 cameras with 6 distractors."""
    root = tmp_path_factory.mktemp("synthetic")
    make_synthetic_dataset(root, ids=40, cameras=4, seed=3, images_per_camera=3, distractors=6)
    return root


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    first = make_synthetic_dataset(tmp_path / "a", seed=5, **SMALL)
    make_synthetic_dataset(tmp_path / "b", seed=5, **SMALL)
    make_synthetic_dataset(tmp_path / "c", seed=6, **SMALL)
    files_a, files_b, files_c = (_files(tmp_path / name) for name in "abc")
    assert len(files_a) == first.train_images + first.query_images + first.gallery_images + 2
    assert files_a == files_b
    shared = set(files_a) & set(files_c)
    assert files_a[ATTRIBUTES_FILE] != files_c[ATTRIBUTES_FILE]
    assert set(files_a) != set(files_c) or any(files_a[n] != files_c[n] for n in shared)


def test_layout_names_splits_and_counts(dataset: Path) -> None:
    train, query, gallery = (_images(dataset, split) for split in ("train", "query", "gallery"))
    train_pids = {pid for pid, _, _ in train}
    test_pids = {pid for pid, _, _ in query}
    assert train_pids.isdisjoint(test_pids)
    assert train_pids | test_pids == set(range(1, 41))
    assert len(test_pids) == 20
    assert {pid for pid, _, _ in gallery} == test_pids | {0}
    assert sum(pid == 0 for pid, _, _ in gallery) == 6
    assert {camera for _, camera, _ in train + query + gallery} == {1, 2, 3, 4}
    names = [path.name for _, _, path in train + query + gallery]
    assert len(names) == len(set(names))
    with Image.open(query[0][2]) as image:
        assert (image.format, image.size, image.mode) == ("JPEG", (64, 128), "RGB")


def test_every_query_has_a_gallery_match_in_another_camera(dataset: Path) -> None:
    gallery_cameras: dict[int, set[int]] = defaultdict(set)
    for pid, camera, _ in _images(dataset, "gallery"):
        gallery_cameras[pid].add(camera)
    query = _images(dataset, "query")
    query_pids = {pid for pid, _, _ in query}
    for pid in query_pids:
        cameras = {camera for p, camera, _ in query if p == pid}
        assert len(cameras | gallery_cameras[pid]) >= 2
    for pid, camera, path in query:
        assert gallery_cameras[pid] - {camera}, f"{path.name} has no cross-camera gallery match"


def test_attributes_table_columns_and_vocabulary(dataset: Path) -> None:
    table = pd.read_parquet(dataset / ATTRIBUTES_FILE)
    assert list(table.columns) == ["pid", *ATTRIBUTE_COLUMNS, "split", *TRAIT_COLUMNS]
    assert tuple(ATTRIBUTE_COLUMNS) == tuple(PERSON_FIELDS)
    assert table["pid"].dtype == np.int64
    assert table["pid"].tolist() == list(range(1, 41))
    for field, values in PERSON_FIELDS.items():
        assert set(table[field]) <= set(values), field
    query_pids = {pid for pid, _, _ in _images(dataset, "query")}
    assert set(table.loc[table["split"] == "test", "pid"]) == query_pids
    person = PersonSpec.from_row(table.iloc[0].to_dict())
    assert person.attributes == {f: table.iloc[0][f] for f in ATTRIBUTE_COLUMNS}


def test_attributes_collide_but_traits_tell_identities_apart() -> None:
    people = make_identities(100, seed=0)
    combinations = [tuple(person.attributes.values()) for person in people.values()]
    counts = pd.Series(combinations).value_counts()
    assert len(counts) < 60
    assert (counts >= 2).sum() >= 20
    assert len({person for person in people.values()}) == 100
    trait_rows = {
        tuple(person.to_row()[name] for name in TRAIT_COLUMNS) for person in people.values()
    }
    assert len(trait_rows) == 100


def test_same_identity_looks_different_across_cameras(dataset: Path) -> None:
    """Pixels of one person in two cameras differ more than two people in one camera."""
    images = _images(dataset, "train")
    pixels = {path: np.asarray(Image.open(path), dtype=np.float32) for _, _, path in images}

    def distance(a: Path, b: Path) -> float:
        return float(np.abs(pixels[a] - pixels[b]).mean())

    same_pid_other_camera = [
        distance(a, b) for pa, ca, a in images for pb, cb, b in images if pa == pb and ca < cb
    ]
    other_pid_same_camera = [
        distance(a, b) for pa, ca, a in images for pb, cb, b in images if pa < pb and ca == cb
    ]
    assert np.median(same_pid_other_camera) > np.median(other_pid_same_camera)


def test_raw_pixel_nearest_neighbour_fails_across_cameras(dataset: Path) -> None:
    """Market protocol (same pid and camera ignored): raw pixels must not re-identify."""
    query, gallery = _images(dataset, "query"), _images(dataset, "gallery")

    def features(rows: list[tuple[int, int, Path]]) -> np.ndarray:
        return np.stack([np.asarray(Image.open(path), np.float32).ravel() for _, _, path in rows])

    query_features, gallery_features = features(query), features(gallery)
    distances = (
        (query_features**2).sum(1)[:, None]
        - 2 * query_features @ gallery_features.T
        + (gallery_features**2).sum(1)[None, :]
    )
    hits = []
    for index, (pid, camera, _) in enumerate(query):
        valid = [j for j, (p, c, _) in enumerate(gallery) if not (p == pid and c == camera)]
        best = valid[int(np.argmin(distances[index, valid]))]
        hits.append(gallery[best][0] == pid)
    assert np.mean(hits) < 0.25  # chance is about 1/20 here; identity traits alone are subtle


@pytest.mark.parametrize("field", list(PERSON_FIELDS))
def test_every_attribute_value_changes_every_view(field: str) -> None:
    """Changing one attribute, all else equal, visibly changes the image from every side."""
    renderer = PedestrianRenderer()
    camera = make_cameras(1, seed=0)[0]
    for seed in range(2):
        attributes = sample_attributes(np.random.default_rng(seed), bag="none", age="adult")
        base = sample_person(np.random.default_rng(seed), attributes)
        for value in PERSON_FIELDS[field]:
            if value == attributes[field]:
                continue
            changed = sample_person(np.random.default_rng(seed), {**attributes, field: value})
            assert (changed.skin_rgb, changed.build) == (base.skin_rgb, base.build)
            for view in VIEWS:
                images = [
                    renderer.render(
                        person,
                        camera,
                        np.random.default_rng(9),
                        view=view,
                        occlude=False,
                        background=False,
                    ).astype(np.int16)
                    for person in (base, changed)
                ]
                moved = (np.abs(images[0] - images[1]).max(axis=-1) > 40).sum()
                assert moved >= 12, f"{field}: {getattr(base, field)} -> {value}, {view}: {moved}"


def test_renderer_is_a_pure_function_of_its_inputs() -> None:
    renderer = PedestrianRenderer(height=96, width=48)
    camera = make_cameras(3, seed=1)[2]
    person = sample_person(np.random.default_rng(0))
    first = renderer.render(person, camera, np.random.default_rng(4))
    again = PedestrianRenderer(height=96, width=48).render(person, camera, np.random.default_rng(4))
    other = renderer.render(person, camera, np.random.default_rng(5))
    assert first.shape == (96, 48, 3) and first.dtype == np.uint8
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    occluded = renderer.render(person, camera, np.random.default_rng(4), occlude=True)
    clear = renderer.render(person, camera, np.random.default_rng(4), occlude=False)
    assert camera.occluder != "none"
    assert (np.abs(occluded.astype(int) - clear.astype(int)).max(-1) > 40).mean() > 0.05
    with pytest.raises(ReIDError, match="unknown view"):
        renderer.render(person, camera, np.random.default_rng(0), view="top")


def test_person_row_round_trip_and_fixed_attributes() -> None:
    person = sample_person(np.random.default_rng(1), {"bag": "handbag", "gender": "female"})
    assert (person.bag, person.gender) == ("handbag", "female")
    assert PersonSpec.from_row(person.to_row()) == person
    with pytest.raises(ReIDError, match="not in the vocabulary"):
        sample_attributes(np.random.default_rng(0), bag="suitcase")
    with pytest.raises(ReIDError, match="unknown person field"):
        sample_attributes(np.random.default_rng(0), hat="red")


def test_refuses_non_empty_output_and_bad_arguments(tmp_path: Path) -> None:
    make_synthetic_dataset(tmp_path, **SMALL)
    with pytest.raises(ReIDError, match="already holds"):
        make_synthetic_dataset(tmp_path, **SMALL)
    summary = make_synthetic_dataset(tmp_path, overwrite=True, seed=1, ids=4, cameras=2)
    written = sum(1 for _ in tmp_path.rglob("*.jpg"))
    assert written == summary.train_images + summary.query_images + summary.gallery_images
    with pytest.raises(ReIDError, match="cameras must be in 2..9"):
        make_synthetic_dataset(tmp_path / "x", cameras=12)


def test_cli_synth_prints_summary_and_one_line_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    arguments = ["data", "synth", "--out", str(tmp_path / "s"), "--ids", "6", "--cameras", "2"]
    result = runner.invoke(app, [*arguments, "--images-per-camera", "1"])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "train 3 ids / 6 images" in output and "2 cameras" in output
    result = runner.invoke(app, arguments)
    assert result.exit_code == 2
    assert "already holds" in result.output
