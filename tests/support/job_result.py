"""What every `write --json` of a four-section job with `--ctx 4096` must show."""

from __future__ import annotations

from typing import Any

RESULT_KEYS = ("job", "words", "sections", "prompt_tokens_evaluated", "context_tokens",
               "generated_tokens", "decode_tokens_per_s")


def check_four_section_result(result: dict[str, Any]) -> None:
    """The result's keys, four sections, the plan's choices beside --ctx, tokens generated."""
    for key in RESULT_KEYS:
        assert key in result
    assert len(result["sections"]) == 4
    # the memory plan chose what --ctx left open
    assert result["settings"]["n_ctx"] == 4096 and result["settings"]["flash_attn"] is True
    assert result["generated_tokens"] > 0 and result["decode_tokens_per_s"] > 0
