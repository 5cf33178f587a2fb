"""`lwlocal pull` and `convert` from a hub id, against a loopback imitation of the hub."""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import run_cli
from tests.support.fake_hub import FakeHub


def hub_env(hub: FakeHub, tmp_path: Path) -> dict[str, str]:
    return {"HF_ENDPOINT": hub.endpoint, "HF_HOME": str(tmp_path / "hf"),
            "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "0"}


def test_pull_downloads_into_the_cache_and_reuses_it(tmp_path, lw_home):
    files = {"config.json": b'{"a": 1}', "tokenizer.json": b"{}", "model.safetensors": b"\0" * 64}
    with FakeHub({"org/model": files}) as hub:
        env = hub_env(hub, tmp_path)
        first = run_cli("pull", "org/model", "--include", "*.json", env_home=lw_home, env=env,
                        check=True)
        folder = Path(first.stdout.strip().splitlines()[-1])
        assert sorted(p.name for p in folder.iterdir()) == ["config.json", "tokenizer.json"]
        assert (folder / "config.json").read_bytes() == b'{"a": 1}'
        run_cli("pull", "org/model", env_home=lw_home, env=env, check=True)
        assert (folder / "model.safetensors").read_bytes() == b"\0" * 64
        fetched = len(hub.file_gets())
        run_cli("pull", "org/model", env_home=lw_home, env=env, check=True)
        assert len(hub.file_gets()) == fetched  # the cache serves the third call


def test_unknown_repo_is_one_line(tmp_path, lw_home):
    with FakeHub({}) as hub:
        proc = run_cli("pull", "org/missing", env_home=lw_home, env=hub_env(hub, tmp_path))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "org/missing: no such repository" in lines[0]


def test_convert_a_hub_id(tiny_llama, tmp_path, lw_home):
    files = {p.name: p.read_bytes() for p in tiny_llama.iterdir() if p.is_file()}
    out = tmp_path / "from-hub.gguf"
    with FakeHub({"org/tiny-llama": files}) as hub:
        run_cli("convert", "org/tiny-llama", "-o", str(out), env_home=lw_home,
                env=hub_env(hub, tmp_path), check=True)
    assert out.is_file() and out.stat().st_size > 100_000
