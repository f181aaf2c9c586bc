"""Caption templates: vocabulary, rendering, answer parsing, repair and the 77-token budget."""

from __future__ import annotations

import itertools
import random

import pytest

from vlreid.attributes import PERSON_FIELDS, VEHICLE_FIELDS
from vlreid.errors import DataFileError, ReIDError
from vlreid.templates import (
    count_clip_tokens,
    fit_to_context,
    load_template,
    normalize_answer,
    parse_answer,
    parse_fields,
    render_caption,
)


@pytest.fixture(scope="module")
def person():
    return load_template("person")


@pytest.fixture(scope="module")
def vehicle():
    return load_template("vehicle")


def test_templates_use_the_shared_vocabulary(person, vehicle):
    assert person.vocabulary == PERSON_FIELDS
    assert vehicle.vocabulary == VEHICLE_FIELDS
    assert (person.name, vehicle.name) == ("person", "vehicle")
    assert person.version >= 1 and vehicle.version >= 1


def test_instruction_offers_every_value(person, vehicle):
    for template in (person, vehicle):
        instruction = template.instruction.lower()
        for spec in template.fields.values():
            for value in spec.values.values():
                assert value.phrase.lower().removeprefix("a ") in instruction, value


def test_every_full_person_caption_parses_back_and_fits(person):
    rng = random.Random(0)
    names = list(PERSON_FIELDS)
    combinations = list(itertools.product(*PERSON_FIELDS.values()))
    for values in rng.sample(combinations, 400):
        attributes = dict(zip(names, values, strict=True))
        caption = render_caption(person, attributes)
        parsed = parse_answer(caption, person)
        assert parsed.attributes == attributes, caption
        assert parsed.status == "ok"
        assert parsed.caption == caption
        assert count_clip_tokens(caption) <= 77


def test_every_vehicle_caption_parses_back(vehicle):
    for color, kind in itertools.product(*VEHICLE_FIELDS.values()):
        caption = render_caption(vehicle, {"color": color, "type": kind})
        assert parse_answer(caption, vehicle).attributes == {"color": color, "type": kind}


def test_canonical_caption_reads_naturally(person):
    caption = render_caption(
        person,
        {
            "gender": "female",
            "age": "old",
            "hair": "long",
            "upper_type": "coat",
            "upper_color": "gray",
            "lower_type": "skirt",
            "lower_color": "pink",
            "shoes": "brown",
            "bag": "none",
        },
    )
    assert caption == (
        "A photo of an old woman with long hair, wearing a gray coat, a pink skirt and brown "
        "shoes, carrying nothing."
    )


def test_partial_fields_drop_their_clauses(person):
    assert render_caption(person, {}) == "A photo of a person."
    assert render_caption(person, {"gender": "male", "shoes": "white"}) == (
        "A photo of a man, wearing white shoes."
    )
    assert render_caption(person, {"upper_color": "red", "bag": "backpack"}) == (
        "A photo of a person, wearing a red top, carrying a backpack."
    )
    # A value outside the vocabulary counts as unknown.
    assert render_caption(person, {"gender": "robot"}) == "A photo of a person."


def test_word_level_decoding_is_normalised_before_parsing(person):
    decoded = (
        "a young man with short hair , wearing a red t - shirt , blue trousers and black "
        "shoes , carrying a backpack ."
    )
    assert normalize_answer(decoded) == (
        "A young man with short hair, wearing a red t-shirt, blue trousers and black shoes, "
        "carrying a backpack."
    )
    assert parse_fields(decoded, person) == {
        "gender": "male",
        "age": "young",
        "hair": "short",
        "upper_type": "t-shirt",
        "upper_color": "red",
        "lower_type": "trousers",
        "lower_color": "blue",
        "shoes": "black",
        "bag": "backpack",
    }
    assert normalize_answer('ASSISTANT: "A photo of a man."') == "A photo of a man."


def test_template_answer_with_artefacts_is_ok(person):
    answer = (
        " a photo of a young man with short hair , wearing a red t - shirt , blue trousers and "
        "black shoes , carrying a backpack . "
    )
    parsed = parse_answer(answer, person)
    assert parsed.status == "ok"
    assert parsed.caption.startswith("A photo of a young man with short hair, wearing a red")


def test_free_answer_is_repaired_into_the_canonical_form(person):
    parsed = parse_answer(
        "The image shows a lady in a grey jacket and blue jeans with white sneakers; she has "
        "a rucksack.",
        person,
    )
    assert parsed.status == "repaired"
    assert parsed.attributes == {
        "gender": "female",
        "upper_type": "coat",
        "upper_color": "gray",
        "lower_type": "trousers",
        "lower_color": "blue",
        "shoes": "white",
        "bag": "backpack",
    }
    assert parsed.caption == (
        "A photo of a woman, wearing a gray coat, blue trousers and white shoes, carrying a "
        "backpack."
    )


def test_colours_are_read_next_to_their_garment(person):
    fields = parse_fields("a man in white trousers and shoes, black coat", person)
    assert fields["lower_color"] == "white"
    assert fields["upper_color"] == "black"
    assert "shoes" not in fields  # "white" belongs to the trousers


def test_unparsed_answer_keeps_the_text_within_77_tokens(person):
    parsed = parse_answer("zebra " * 120, person)
    assert parsed.status == "unparsed"
    assert parsed.attributes == {}
    assert parsed.caption.startswith("Zebra zebra")
    assert count_clip_tokens(parsed.caption) <= 77
    assert parse_answer("   ", person).caption == "A photo of a person."


def test_fit_to_context_cuts_at_a_word_and_keeps_what_fits():
    short = "A photo of a person."
    assert fit_to_context(short) == short
    long_text = " ".join(f"word{index}" for index in range(200))
    fitted = fit_to_context(long_text)
    assert count_clip_tokens(fitted) <= 77
    assert fitted.endswith(".")
    words = fitted[:-1].split()
    assert long_text.startswith(" ".join(words))
    # One more word would not fit: the cut is as late as possible.
    assert count_clip_tokens(" ".join(long_text.split()[: len(words) + 1]) + ".") > 77


def test_unknown_template_name_and_bad_files(tmp_path):
    with pytest.raises(ReIDError, match="unknown template 'animal'.*person"):
        load_template("animal")
    with pytest.raises(DataFileError, match="not found"):
        load_template(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text('name = "x"\nversion = 1\n')
    with pytest.raises(DataFileError, match="malformed template"):
        load_template(broken)
    unknown_field = tmp_path / "unknown.toml"
    unknown_field.write_text(
        'name = "x"\nversion = 1\ninstruction = "Say it."\n'
        '[[clauses]]\ntext = "A {colour} car"\n'
        '[fields.color]\nvalues.red = { phrase = "red" }\n'
    )
    with pytest.raises(DataFileError, match="unknown field"):
        load_template(unknown_field)


def test_user_template_file(tmp_path):
    path = tmp_path / "bike.toml"
    path.write_text(
        'name = "bike"\nversion = 3\ninstruction = "What colour is the bike?"\n'
        '[[clauses]]\ntext = "A photo of a {color} bike"\nalways = true\n'
        '[[clauses]]\ntext = "."\nalways = true\n'
        '[fields.color]\nvalues.red = { phrase = "red", synonyms = ["crimson"] }\n'
        'values.blue = { phrase = "blue" }\n'
    )
    template = load_template(path)
    assert (template.name, template.version) == ("bike", 3)
    parsed = parse_answer("It is a crimson bicycle.", template)
    assert (parsed.status, parsed.caption) == ("repaired", "A photo of a red bike.")
