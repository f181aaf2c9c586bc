"""The caption run: shards, columns, image errors, resume, job arrays, foreign folders, audit."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jpeg_tree import write_jpeg_tree
from vlreid.captioning.attributes import AttributesCaptioner, load_attribute_labels
from vlreid.captioning.audit import audit_captions, caption_rows
from vlreid.captioning.protocol import CaptionItem
from vlreid.captioning.run import CaptionRunConfig, caption_manifest
from vlreid.captioning.shards import SHARD_SCHEMA, ShardWriter, read_manifest
from vlreid.errors import DataFileError, ReIDError
from vlreid.templates import load_template, render_caption

IMAGES_PER_ID = {1: 3, 2: 2, 5: 4}  # 9 train images, + 1 query + 1 gallery of pid 1
ALL_SPLITS = ("train", "query", "gallery")


class ColourCaptioner:
    """Answers from the pixels: a dark image is a man in a black coat, a light one in white."""

    name = "colour"
    needs_images = True

    def __init__(self, model: str = "colour-v1", fail_after_batches: int | None = None) -> None:
        self.model = model
        self.fail_after_batches = fail_after_batches
        self.seen: list[str] = []

    def settings(self) -> dict[str, object]:
        return {"threshold": 128}

    def describe(self, items: Sequence[CaptionItem]) -> list[str]:
        if self.fail_after_batches is not None and len(self.seen) >= self.fail_after_batches:
            raise RuntimeError("simulated crash")
        self.seen.append(",".join(item.relpath for item in items))
        return [
            f"a man in a {'black' if np.asarray(item.image).mean() < 128 else 'white'} coat"
            for item in items
        ]


@pytest.fixture()
def dataset(tmp_path) -> tuple[Path, pd.DataFrame]:
    root = tmp_path / "market"
    return root, write_jpeg_tree(root, IMAGES_PER_ID)


def run(dataset, out, backend=None, **options):
    """Caption all splits, batches and shards of 2 rows, with ``backend`` (or the config's)."""
    root, manifest = dataset
    options = {"splits": ALL_SPLITS, "batch_size": 2, "shard_size": 2, "progress": False} | options
    return caption_manifest(manifest, root, out, CaptionRunConfig(**options), backend)


def test_shards_have_the_documented_columns_and_one_row_per_image(dataset, tmp_path):
    out = tmp_path / "captions"
    summary = run(dataset, out, ColourCaptioner())
    captions = pd.read_parquet(out)
    manifest = dataset[1]
    assert list(captions.columns) == SHARD_SCHEMA.names
    assert sorted(captions["relpath"]) == sorted(manifest["relpath"])
    assert str(captions["pid"].dtype) == "int64" and str(captions["seconds"].dtype) == "float32"
    joined = captions.merge(manifest, on="relpath", suffixes=("", "_manifest"))
    for column in ("dataset", "split", "pid", "camid"):
        assert (joined[column] == joined[f"{column}_manifest"]).all()
    assert set(captions["status"]) == {"repaired"}
    assert set(captions["captioner"]) == {"colour"} and set(captions["model"]) == {"colour-v1"}
    assert set(captions["template"]) == {"person"} and set(captions["template_version"]) == {"1"}
    first = captions.iloc[0]
    parsed = json.loads(first["attributes"])
    assert parsed["gender"] == "male" and parsed["upper_type"] == "coat"
    assert first["caption"] == f"A photo of a man, wearing a {parsed['upper_color']} coat."
    assert (captions["seconds"] > 0).all()
    # 11 rows in batches of 2, a shard once 2 rows are buffered: 6 shards.
    assert sorted(path.name for path in out.iterdir()) == ["_manifest.json"] + [
        f"part-{index:05d}.parquet" for index in range(6)
    ]
    recorded = read_manifest(out)
    assert recorded["model"] == "colour-v1" and recorded["settings"] == {"threshold": 128}
    assert recorded["template"] == "person" and recorded["template_version"] == 1
    assert (summary.images, summary.skipped, summary.repaired) == (11, 0, 11)


def test_unreadable_images_become_rows_with_a_reason(dataset, tmp_path):
    root, manifest = dataset
    broken, missing = manifest["relpath"].iloc[0], manifest["relpath"].iloc[1]
    (root / broken).write_bytes(b"not a jpeg")
    (root / missing).unlink()
    summary = run(dataset, tmp_path / "captions", ColourCaptioner())
    captions = pd.read_parquet(tmp_path / "captions").set_index("relpath")
    assert len(captions) == len(manifest)
    for relpath in (broken, missing):
        assert captions.loc[relpath, "status"] == "image_error"
        assert pd.isna(captions.loc[relpath, "caption"])
        assert captions.loc[relpath, "error"]
    assert "UnidentifiedImageError" in captions.loc[broken, "error"]
    assert "FileNotFoundError" in captions.loc[missing, "error"]
    assert (summary.image_errors, summary.repaired) == (2, 9)


def test_unreadable_images_are_captioned_again_in_place_once_they_read(dataset, tmp_path):
    """The rerun that the training error asks for: only the image_error rows are captioned
    again, their new rows replace the old ones inside the same shards (no duplicate, no new
    shard), and an image that still fails stays one image_error row."""
    root, manifest = dataset
    out = tmp_path / "captions"
    fixed, still_broken = manifest["relpath"].iloc[0], manifest["relpath"].iloc[4]
    good = (root / fixed).read_bytes()
    for relpath in (fixed, still_broken):
        (root / relpath).write_bytes(b"not a jpeg")
    run(dataset, out, ColourCaptioner())
    shards = sorted(path.name for path in out.glob("part-*.parquet"))
    before = pd.read_parquet(out).set_index("relpath")
    (root / fixed).write_bytes(good)

    second = ColourCaptioner()
    summary = run(dataset, out, second)
    assert sorted(",".join(second.seen).split(",")) == [fixed]  # the readable one only
    assert (summary.images, summary.skipped, summary.image_errors) == (2, len(manifest) - 2, 1)
    assert sorted(path.name for path in out.glob("part-*.parquet")) == shards
    assert not list(out.glob(".*"))  # no temporary file left
    after = pd.read_parquet(out)
    assert after["relpath"].is_unique and len(after) == len(manifest)
    after = after.set_index("relpath")
    assert after.loc[fixed, "status"] == "repaired" and after.loc[fixed, "caption"]
    assert after.loc[still_broken, "status"] == "image_error"
    untouched = after.index.difference([fixed, still_broken])
    pd.testing.assert_frame_equal(after.loc[untouched], before.loc[untouched])


def test_another_dataset_root_is_refused(dataset, tmp_path):
    """Two roots of the same dataset name (e.g. two synthetic datasets) are never merged."""
    root, manifest = dataset
    out = tmp_path / "captions"
    run(dataset, out, ColourCaptioner())
    assert read_manifest(out)["root"] == str(root.resolve())
    copy = tmp_path / "copy"
    write_jpeg_tree(copy, IMAGES_PER_ID)
    with pytest.raises(ReIDError) as error:
        run((copy, manifest), out, ColourCaptioner())
    assert str(error.value) == (
        f"caption folder {out} holds captions of the market1501 images under {root.resolve()}, "
        f"not {copy.resolve()}: use another --out for this dataset, or --overwrite to replace them"
    )


def test_a_crashed_run_resumes_without_duplicates(dataset, tmp_path):
    out = tmp_path / "captions"
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(dataset, out, ColourCaptioner(fail_after_batches=3))
    written = pd.read_parquet(out)
    assert len(written) == 6  # three batches of two rows, one shard each
    (out / ".part-00003.parquet.tmp").write_bytes(b"half a shard")  # killed mid-write
    assert len(pd.read_parquet(out)) == 6  # readers skip hidden files
    second = ColourCaptioner()
    summary = run(dataset, out, second)
    captions = pd.read_parquet(out)
    assert sorted(captions["relpath"]) == sorted(dataset[1]["relpath"])
    assert captions["relpath"].is_unique
    assert (summary.skipped, summary.images) == (6, 5)
    assert not set(",".join(second.seen).split(",")) & set(written["relpath"])
    assert not (out / ".part-00003.parquet.tmp").exists()


def test_job_array_shards_are_disjoint_and_complete(dataset, tmp_path):
    out = tmp_path / "captions"
    for index in (1, 0):
        run(dataset, out, ColourCaptioner(), num_shards=2, shard_index=index, shard_size=100)
    assert sorted(path.name for path in out.glob("part-*")) == [
        "part-00000-00000.parquet",
        "part-00001-00000.parquet",
    ]
    parts = [pd.read_parquet(path) for path in sorted(out.glob("part-*"))]
    assert not set(parts[0]["relpath"]) & set(parts[1]["relpath"])
    assert abs(len(parts[0]) - len(parts[1])) <= 1
    assert sorted(pd.read_parquet(out)["relpath"]) == sorted(dataset[1]["relpath"])
    again = run(dataset, out, ColourCaptioner(), num_shards=2, shard_index=0)
    assert (again.images, again.skipped) == (0, len(parts[0]))


def test_foreign_folders_are_refused_unless_overwrite(dataset, tmp_path):
    out = tmp_path / "captions"
    run(dataset, out, ColourCaptioner(model="first"))
    with pytest.raises(ReIDError, match="written by another run.*model 'first' there, 'second'"):
        run(dataset, out, ColourCaptioner(model="second"))
    with pytest.raises(ReIDError, match="--overwrite cannot be combined with --num-shards"):
        run(dataset, out, ColourCaptioner(model="second"), overwrite=True, num_shards=2)
    run(dataset, out, ColourCaptioner(model="second"), overwrite=True, shard_size=100)
    captions = pd.read_parquet(out)
    assert set(captions["model"]) == {"second"} and len(captions) == len(dataset[1])
    other = tmp_path / "not-captions"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ReIDError, match="not a caption folder"):
        run(dataset, other, ColourCaptioner())


def test_bad_options_and_empty_splits(dataset, tmp_path):
    root, manifest = dataset
    train_only = manifest[manifest["split"] == "train"]
    config = CaptionRunConfig(splits=("query",), progress=False)
    with pytest.raises(ReIDError, match="no image to caption in split"):
        caption_manifest(train_only, root, tmp_path / "out", config, ColourCaptioner())
    with pytest.raises(ReIDError, match="--shard-index 2 is outside 0..1"):
        run(dataset, tmp_path / "out", ColourCaptioner(), num_shards=2, shard_index=2)
    with pytest.raises(ReIDError, match="needs --attributes"):
        run(dataset, tmp_path / "out", None, captioner="attributes")


def write_labels(path: Path, overrides: dict[int, dict[str, str]] | None = None) -> Path:
    """Labels of pids 1 and 2 (pid 5 unlabelled)."""
    rows = [
        {"pid": 1, "gender": "male", "age": "young", "upper_type": "coat", "upper_color": "red",
         "lower_type": "shorts", "lower_color": "blue", "shoes": "white", "bag": "none",
         "hair": "short"},
        {"pid": 2, "gender": "female", "age": "old", "upper_type": "sweater",
         "upper_color": "green", "lower_type": "skirt", "lower_color": "pink", "shoes": "brown",
         "bag": "handbag", "hair": "long"},
    ]  # fmt: skip
    for row in rows:
        row.update((overrides or {}).get(row["pid"], {}))
    pd.DataFrame(rows).to_parquet(path)
    return path


def test_attributes_captioner_and_audit(dataset, tmp_path):
    labels_path = write_labels(tmp_path / "labels.parquet")
    out = tmp_path / "captions"
    summary = run(dataset, out, captioner="attributes", attributes=labels_path)
    captions = pd.read_parquet(out).set_index("relpath")
    person = load_template("person")
    labels = load_attribute_labels(labels_path, person)
    for _, row in captions.iterrows():
        if row["pid"] == 5:
            assert (row["status"], row["caption"]) == ("unparsed", "A photo of a person.")
        else:
            assert row["status"] == "ok"
            assert row["caption"] == render_caption(person, labels[row["pid"]])
            assert json.loads(row["attributes"]) == labels[row["pid"]]
    pid_counts = dataset[1]["pid"].value_counts()
    assert summary.ok == pid_counts[1] + pid_counts[2] and summary.unparsed == pid_counts[5]
    assert set(captions["model"]) == {"labels.parquet"}

    # Audit against labels that disagree on pid 2's upper colour only.
    other = write_labels(tmp_path / "other.parquet", {2: {"upper_color": "black"}})
    report = audit_captions(out, other)
    labelled = pid_counts[1] + pid_counts[2]
    assert (report.rows, report.labelled) == (len(captions), labelled)
    by_field = {entry.field: entry for entry in report.fields}
    assert by_field["upper_color"].agreed == pid_counts[1]
    assert by_field["upper_color"].agreement == pytest.approx(pid_counts[1] / labelled)
    assert all(by_field[name].agreement == 1.0 for name in by_field if name != "upper_color")
    assert report.overall == pytest.approx((9 * labelled - pid_counts[2]) / (9 * labelled))
    assert report.to_dict()["fields"][0]["field"] == "gender"
    shown = caption_rows(out, pid=2, limit=1)
    assert len(shown) == 1 and shown.loc[0, "pid"] == 2


def test_attribute_label_files_are_validated(tmp_path):
    person = load_template("person")
    bad_value = write_labels(tmp_path / "bad.parquet", {1: {"bag": "suitcase"}})
    with pytest.raises(DataFileError, match="pid 1 has bag='suitcase'; expected one of"):
        load_attribute_labels(bad_value, person)
    pd.DataFrame({"id": [1], "gender": ["male"]}).to_csv(tmp_path / "no_pid.csv", index=False)
    with pytest.raises(DataFileError, match="expected a 'pid' column"):
        load_attribute_labels(tmp_path / "no_pid.csv", person)
    with pytest.raises(DataFileError, match="attribute file not found"):
        load_attribute_labels(tmp_path / "absent.parquet", person)
    captioner = AttributesCaptioner({7: {}}, person, "x")
    assert captioner.describe([CaptionItem("a.jpg", 7)]) == ["A photo of a person."]


def test_shard_writer_continues_numbering(tmp_path):
    (tmp_path / "part-00004.parquet").write_bytes(b"")
    writer = ShardWriter(tmp_path, "part-")
    assert writer.next_index == 5
    assert writer.write([]) is None


def test_auto_template_is_vehicle_for_vehicle_datasets(dataset, tmp_path):
    root, manifest = dataset
    vehicles = manifest.assign(dataset="veri776")
    labels = tmp_path / "vehicles.csv"
    pd.DataFrame({"pid": [1, 2, 5], "color": ["red", "silver", "black"],
                  "type": ["sedan", "bus", "suv"]}).to_csv(labels, index=False)  # fmt: skip
    config = CaptionRunConfig(captioner="attributes", attributes=labels, progress=False)
    caption_manifest(vehicles, root, tmp_path / "vehicle-captions", config)
    captions = pd.read_parquet(tmp_path / "vehicle-captions")
    assert set(captions["template"]) == {"vehicle"}
    assert set(captions["caption"]) == {"A photo of a red sedan.", "A photo of a silver bus.",
                                        "A photo of a black suv."}  # fmt: skip
    run(dataset, tmp_path / "person-captions", ColourCaptioner())
    assert set(pd.read_parquet(tmp_path / "person-captions")["template"]) == {"person"}
