import json

import llama_cpp
import pytest

from lwlocal.util.errors import LwlocalError
from lwlocal.write.outline import (
    MAX_SECTIONS,
    load_outline,
    normalise_budgets,
    outline_schema,
    parse_model_outline,
    section_range,
)


@pytest.mark.parametrize(
    "raw,total",
    [([400, 400, 200], 1000), ([1, 1, 1], 10), ([0, -5, 300], 900), ([7], 5000),
     ([100, 100000, 100], 3000), ([333, 333, 334], 1001)],
)
def test_budgets_sum_to_the_total(raw, total):
    budgets = normalise_budgets(raw, total)
    assert sum(budgets) == total
    assert len(budgets) == len(raw)
    assert all(b > 0 for b in budgets)


def test_budgets_keep_proportions_and_clamp_outliers():
    assert normalise_budgets([100, 300], 800) == [200, 600]
    # 100000 is clamped to 4x the median, so the other sections are not starved
    small, huge, other = normalise_budgets([100, 100000, 100], 600)
    assert huge == 400 and small == other == 100


def test_section_range_follows_the_paper_limits():
    assert section_range(300) == (1, 2)
    lo, hi = section_range(10000)
    assert lo == 10 and hi == MAX_SECTIONS
    assert section_range(100) == (1, 1)


def test_parse_model_outline_normalises():
    text = json.dumps({"sections": [
        {"title": "Section 1: Roots", "main_point": "first", "words": 100},
        {"title": "", "main_point": "second", "words": 300},
    ]})
    outline = parse_model_outline(text, "prompt", 1000)
    assert [s.words for s in outline.sections] == [250, 750]
    assert outline.sections[0].title == "Roots"
    assert outline.sections[1].title == "Section 2"
    assert outline.planned_words == 1000


@pytest.mark.parametrize("text", ["not json", "{}", '{"sections": []}', '{"sections": [1]}',
                                  '{"sections": [{"title": "x", "words": 3}]}'])
def test_bad_model_outline_is_a_clear_error(text):
    with pytest.raises(LwlocalError, match="model outline"):
        parse_model_outline(text, "p", 100)


def test_outline_file_round_trip(tmp_path):
    text = json.dumps({"sections": [{"title": "A", "main_point": "a", "words": 10},
                                    {"title": "B", "main_point": "b", "words": 30}]})
    original = parse_model_outline(text, "the prompt", 400)
    path = tmp_path / "outline.json"
    path.write_text(original.to_json())
    loaded = load_outline(path)
    assert loaded == original
    # words from the command line rescale the budgets
    assert load_outline(path, words=800).planned_words == 800


@pytest.mark.parametrize("content,problem", [
    ("{broken", "not valid JSON"),
    ('{"prompt": "p", "words": 100, "sections": "x"}', "no list of sections"),
    ('{"words": 100, "sections": [{"main_point": "a", "words": 1}]}', "no prompt"),
    ('{"prompt": "p", "words": -3, "sections": [{"main_point": "a", "words": 1}]}',
     "-3 must be a whole number from 1"),
    ('{"prompt": "p", "words": 1e400, "sections": [{"main_point": "a", "words": 1}]}',
     "inf must be a whole number from 1"),
    ('{"prompt": "p", "words": 100, "sections": [{"main_point": "a", "words": 1e400}]}',
     "section 1's word count inf is not a finite number"),
    ('{"prompt": "p", "words": 100, "sections": [{"main_point": "a", "words": NaN}]}',
     "section 1's word count nan is not a finite number"),
])
def test_bad_outline_file_names_the_file(tmp_path, content, problem):
    path = tmp_path / "edited.json"
    path.write_text(content)
    with pytest.raises(LwlocalError, match=problem) as info:
        load_outline(path)
    assert str(path) in str(info.value)


def test_huge_budgets_are_normalised_like_any_outlier(tmp_path):
    path = tmp_path / "edited.json"
    path.write_text('{"prompt": "p", "words": 300, "sections": [{"main_point": "a", "words": 1'
                    + "0" * 400 + '}, {"main_point": "b", "words": 100}]}')
    assert [s.words for s in load_outline(path).sections] == [240, 60]


def test_outline_schema_compiles_to_a_llama_cpp_grammar():
    grammar = llama_cpp.LlamaGrammar.from_json_schema(json.dumps(outline_schema((2, 5))),
                                                      verbose=False)
    assert grammar is not None
