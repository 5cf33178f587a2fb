"""`lwlocal plan --check-invariance` on the default model: the plan's settings on the CPU
compute a batch exactly as one token at a time; an f16 KV cache does not (past 256 tokens,
llama.cpp splits one token's attention over it across threads, a batch's not)."""

from __future__ import annotations

import json
import re

import pytest

from tests.support.cli import invoke

pytestmark = pytest.mark.model


def test_the_plans_settings_are_batch_invariant_and_f16_is_not():
    planned = json.loads(invoke("plan", "--words", "300", "--json", "--check-invariance",
                                check=True).stdout)
    assert planned["kv_type"] == "q8_0" and planned["flash_attn"]
    assert planned["batch_invariant"] and planned["batch_max_logit_difference"] == 0.0
    assert planned["batch_check_tokens"] > 256
    text = " ".join(invoke("plan", "--words", "300", "--check-invariance", "--kv-type", "f16",
                           check=True).stdout.split())
    found = re.search(r"a batch differs from one token at a time \(logits by up to (\S+)\)", text)
    assert found and float(found[1]) > 0, text
