"""Downloading checkpoints from the Hugging Face hub."""

from __future__ import annotations

from pathlib import Path

from lwlocal.util.errors import LwlocalError

# What converting needs from a hub repository: weights, configs, tokenizer, chat template.
CHECKPOINT_FILES = ["*.safetensors", "*.json", "tokenizer.model", "*.jinja", "*.txt"]


def looks_like_repo_id(text: str) -> bool:
    """``org/name`` with no local file or folder of that name."""
    parts = text.split("/")
    return len(parts) == 2 and all(parts) and not Path(text).exists()


def pull(repo_id: str, include: list[str] | None = None) -> Path:
    """Download a hub repository (or its files matching ``include``) into the Hugging Face
    cache, resuming partial downloads; returns the local snapshot folder.

    The hub address comes from ``HF_ENDPOINT`` like every Hugging Face tool."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    try:
        return Path(snapshot_download(repo_id, allow_patterns=include))
    except GatedRepoError as exc:
        raise LwlocalError(f"{repo_id}: gated repository; accept its license on the hub and "
                           "log in (hf auth login)") from exc
    except RepositoryNotFoundError as exc:
        raise LwlocalError(f"{repo_id}: no such repository on the hub (or private: log in with "
                           "hf auth login)") from exc
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LwlocalError(f"{repo_id}: download failed ({first_line})") from exc
