"""Offline by construction: the suite fails a test that reaches beyond this machine (a
connection beyond loopback, a name look-up), the Hugging Face libraries are offline around
every call that is not a download the user asked for, and a relative checkpoint path is never
read as a hub id (issue 29: `quantize-gptq ck` looked `ck` up on the hub 16 times)."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest
from pytest_socket import SocketConnectBlockedError

from lwlocal.util.offline import OFFLINE_VARIABLES, hf_offline
from tests.support.cli import invoke


def test_a_connection_beyond_loopback_fails_the_test():
    with pytest.raises(SocketConnectBlockedError):
        socket.create_connection(("192.0.2.1", 80))  # TEST-NET-1: never reached
    with pytest.raises(AssertionError, match="looked up 'huggingface.co'"):
        socket.getaddrinfo("huggingface.co", 443)


def test_loopback_is_allowed():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname()):
            pass


def test_hf_offline_turns_the_hub_off_and_back(monkeypatch):
    import huggingface_hub.constants as constants

    for name in OFFLINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with hf_offline():
        assert constants.is_offline_mode() and os.environ["HF_HUB_OFFLINE"] == "1"
        from transformers.utils.hub import is_offline_mode

        assert is_offline_mode()
    assert not constants.is_offline_mode()
    assert not any(name in os.environ for name in OFFLINE_VARIABLES)


def test_quantize_gptq_of_a_relative_path_stays_offline(tiny_llama, tmp_path, lw_home,
                                                       monkeypatch):
    """`quantize-gptq ck -o out.gptq` run in the checkpoint's folder: GPTQModel works in a
    folder of its own, where `ck` would name nothing local and be looked up on the hub."""
    shutil.copytree(tiny_llama, tmp_path / "ck")
    monkeypatch.chdir(tmp_path)
    proc = invoke("quantize-gptq", "ck", "-o", "out.gptq", "--group-size", "32", "--samples",
                  "4", "--seq-len", "64", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (Path("out.gptq") / "config.json").is_file()
