"""A JSON object read from text that may not hold one (a file another process or a model
wrote)."""

from __future__ import annotations

import json
from typing import Any


def json_object(text: str) -> dict[str, Any] | None:
    """The JSON object ``text`` holds, or None where it holds something else or no JSON."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None
