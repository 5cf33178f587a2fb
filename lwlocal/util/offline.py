"""The Hugging Face libraries kept to local files: lwlocal reaches the hub only where the user
asked for a download (``pull``, or ``convert`` and ``quantize-gptq`` of a hub id); every other
call into transformers, GPTQModel or huggingface_hub runs inside :func:`hf_offline`, where a
name that is not a local folder fails at once instead of being looked up on the hub."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
HUB_CONSTANTS = "huggingface_hub.constants"  # where huggingface_hub reads its offline mode


def _hub_offline_from_environment() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in {"1", "ON", "YES", "TRUE"}


@contextlib.contextmanager
def hf_offline() -> Iterator[None]:
    """Inside the block the Hugging Face libraries are offline: the environment variables they
    read as they are imported, and huggingface_hub's mode where it is imported already (it
    reads the variables once); both as they were afterwards."""
    before = {name: os.environ.get(name) for name in OFFLINE_VARIABLES}
    os.environ.update(dict.fromkeys(OFFLINE_VARIABLES, "1"))
    loaded = sys.modules.get(HUB_CONSTANTS)
    mode = getattr(loaded, "HF_HUB_OFFLINE", None)
    if loaded is not None:
        loaded.HF_HUB_OFFLINE = True  # type: ignore[attr-defined]
    try:
        yield
    finally:
        restore_environment(before)
        if (constants := sys.modules.get(HUB_CONSTANTS)) is not None:  # imported meanwhile too
            constants.HF_HUB_OFFLINE = (  # type: ignore[attr-defined]
                mode if loaded is not None else _hub_offline_from_environment())


def restore_environment(before: dict[str, str | None]) -> None:
    """Put environment variables back as ``before`` had them (None: unset)."""
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
