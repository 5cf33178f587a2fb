"""`lwlocal plan` and `lwlocal hw` from the command line (in this process)."""

import json

import pytest

from lwlocal.runtime.llama_build import llama_build
from tests.support.cli import invoke


def test_plan_json_shape(lw_home):
    proc = invoke("plan", "--words", "2000", "--json", check=True)
    plan = json.loads(proc.stdout)
    for key in ("ram_bytes", "vram_bytes", "n_ctx", "kv_type", "flash_attn", "n_gpu_layers",
                "n_batch", "fits", "reasons"):
        assert key in plan
    assert plan["fits"] and plan["vram_bytes"] == 0 and plan["sizes_exact"]
    assert plan["ram_bytes"] == sum(plan["memory_parts"].values())


def test_plan_for_a_card_before_download(lw_home):
    proc = invoke("plan", "longwriter-llama3.1-8b", "--quant", "Q4_K_M", "--words", "10000",
                  "--mode", "direct", "--ram", "16", "--vram", "0", "--json", check=True)
    plan = json.loads(proc.stdout)
    assert not plan["sizes_exact"] and plan["n_ctx"] >= 10000 * 1.4
    assert 4 * 2**30 < plan["ram_bytes"] < 16 * 2**30


def test_plan_overrides_and_formats(lw_home):
    proc = invoke("plan", "--words", "1500", "--ctx", "3072", "--kv-type", "q8_0",
                  "--format", "llama-server", check=True)
    args = proc.stdout.split()
    assert args[0] == "llama-server" and args[args.index("-c") + 1] == "3072"
    assert args[args.index("--cache-type-k") + 1] == "q8_0"
    modelfile = invoke("plan", "--words", "1500", "--format", "ollama", check=True).stdout
    assert modelfile.count("FROM ") == 1 and "PARAMETER num_ctx" in modelfile
    assert 'TEMPLATE """' in modelfile and "{{ .Prompt }}" in modelfile


def test_plan_counts_a_draft_model_in(lw_home, default_model):
    """--speculate draft MODEL: the draft's memory in the plan and in llama-server's line."""
    alone = json.loads(invoke("plan", "--words", "1500", "--speculate", "lookup", "--json",
                              check=True).stdout)
    proc = invoke("plan", "--words", "1500", "--speculate", "draft", str(default_model),
                  "--json", check=True)
    plan = json.loads(proc.stdout)
    assert plan["draft_model"] == default_model.name and alone["draft_model"] is None
    assert any(reason.startswith("KV cache q8_0") and reason.endswith(
        "for --speculate lookup: a quantized cache keeps its output the same")
        for reason in alone["reasons"])  # not "as you asked": the user did not
    draft = plan["memory_parts"]["ram_draft"]
    assert draft > default_model.stat().st_size
    assert plan["ram_bytes"] == alone["ram_bytes"] + draft
    assert any("the draft model" in reason for reason in plan["reasons"])
    args = invoke("plan", "--words", "1500", "--speculate=draft", str(default_model),
                  "--format", "llama-server", check=True).stdout.split()
    assert args[args.index("--model-draft") + 1] == str(default_model)
    assert args[args.index("--gpu-layers-draft") + 1] == "0"


def test_plan_that_does_not_fit_exits_nonzero_with_suggestions(lw_home):
    proc = invoke("plan", "--words", "3000", "--ram", "0.05")
    assert proc.returncode == 1
    assert "does not fit" in proc.stdout and "a smaller quant" in proc.stdout


@pytest.mark.parametrize("args,problem", [
    (["plan", "nope", "--words", "100"], "unknown model 'nope'"),
    (["plan", "{tmp}/fake.gguf", "--words", "100"], "not a GGUF file"),
    (["plan", "--words", "0"], "--words 0: must be a positive"),
    (["plan", "--words", "100", "--ram", "lots"], "--ram lots: not a sensible amount"),
    (["plan", "--words", "100", "--ram", "-2"], "--ram -2: not a sensible amount"),
    (["plan", "--words", "100", "--kv-type", "q8_0", "--flash-attn", "off"],
     "needs --flash-attn on"),
    (["plan", "--words", "100", "--ctx", "32"], "--ctx 32: must be at least 64"),
    (["plan", "--words", "100", "--ctx", "0"], "--ctx 0: must be at least 64"),
    (["plan", "--words", "100", "--n-batch", "0"], "--n-batch 0: must be at least 1"),
    (["plan", "--words", "100", "--ngl", "-1"], "--ngl -1: must be at least 0"),
])
def test_plan_bad_input(tmp_path, lw_home, args, problem):
    (tmp_path / "fake.gguf").write_text("not a model")
    proc = invoke(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and problem in lines[0], proc.stderr


def test_hw(lw_home):
    data = json.loads(invoke("hw", "--json", check=True).stdout)
    assert data["ram_total"] > 0 and data["cores"] >= 1


def test_hw_reports_the_llama_cpp_build(lw_home):
    text = invoke("hw", check=True).stdout
    assert "llama.cpp" in text and "backends" in text and "CPU" in text
    data = json.loads(invoke("hw", "--json", check=True).stdout)
    assert data["offload"] == data["llama_cpp"]["offload"]
    assert "CPU" in data["llama_cpp"]["backends"] and data["llama_cpp"]["version"]


CPU_ONLY_BUILD = pytest.mark.skipif(llama_build().offload, reason="this llama.cpp offloads")


@CPU_ONLY_BUILD
def test_ngl_on_a_cpu_only_build_warns_and_plans_for_the_cpu(lw_home, fake_model):
    proc = invoke("plan", "--words", "1000", "--ngl", "8", "--json", check=True)
    data = json.loads(proc.stdout)
    assert data["n_gpu_layers"] == 0 and data["vram_bytes"] == 0
    assert proc.stderr.count("lwlocal: warning: --ngl 8 cannot take effect") == 1
    assert "make demo GPU=cuda" in proc.stderr and data["warnings"]
    proc = invoke("write", "A short note on tides.", "--words", "150", "--outline-only", "--ngl",
                  "8", check=True)
    assert proc.stderr.count("lwlocal: warning: --ngl 8 cannot take effect") == 1


@CPU_ONLY_BUILD
def test_hw_measure_without_a_gpu_measures_the_speed_alone(lw_home, monkeypatch):
    from lwlocal.cli import models
    from lwlocal.memory import gpu_runtime

    measured = []
    monkeypatch.setattr(models, "measure_speed", lambda threads, model: measured.append("speed"))
    monkeypatch.setattr(gpu_runtime, "measure_gpu_runtime",
                        lambda model, gpu: measured.append("gpu"))
    invoke("hw", "--measure", check=True)
    assert measured == ["speed"]
