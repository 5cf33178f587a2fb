import pytest

from lwlocal.families.prompt_format import FORMATS, format_from_template
from lwlocal.models.catalogue import CARDS, DEFAULT_MODEL, resolve
from lwlocal.util.errors import LwlocalError

KIB = 1024


def test_card_kv_cache_per_token_matches_the_published_configs():
    glm = CARDS["longwriter-glm4-9b"]
    llama = CARDS["longwriter-llama3.1-8b"]
    assert glm.kv_bytes_per_token() == 40 * KIB
    assert llama.kv_bytes_per_token() == 128 * KIB
    assert 32 * 1024 * glm.kv_bytes_per_token() == 1.25 * 2**30
    assert 32 * 1024 * llama.kv_bytes_per_token() == 4 * 2**30


def test_longwriter_prompt_formats():
    assert CARDS["longwriter-llama3.1-8b"].format.first_turn("hi") == "[INST]hi[/INST]"
    assert CARDS["longwriter-glm4-9b"].format.first_turn("hi").startswith("[gMASK]<sop><|user|>")


def test_default_model_resolves_to_the_embedded_file(default_model):
    model = resolve(None)
    assert model.card is CARDS[DEFAULT_MODEL]
    assert model.path == default_model
    assert model.context_length == 8192


def test_gguf_path_resolves_with_metadata(default_model):
    model = resolve(str(default_model))
    assert model.card is None
    assert model.format is FORMATS["chatml"]
    assert model.context_length == 8192


def test_template_detection():
    assert format_from_template("[gMASK]<sop>{% for m in messages %}") is FORMATS["glm4"]
    assert format_from_template("<|start_header_id|>") is FORMATS["llama3"]
    assert format_from_template(None) is FORMATS["chatml"]


@pytest.mark.parametrize("make,problem", [
    (lambda p: "no-such-card", "unknown model"),
    (lambda p: str(p / "missing.gguf"), "no such file"),
    (lambda p: (p / "fake.gguf").write_text("hello") and str(p / "fake.gguf"), "not a GGUF"),
    (lambda p: "longwriter-glm4-9b", "no local GGUF"),
])
def test_bad_model_arguments(tmp_path, make, problem):
    with pytest.raises(LwlocalError, match=problem):
        resolve(make(tmp_path))
