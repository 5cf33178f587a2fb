"""Errors and plan notes in the app's words: a setting is named by the label of the field that
sets it (the library names it ``{n_ctx}``, the command line ``--ctx``)."""

from __future__ import annotations

from lwlocal.util.errors import LwlocalError, SettingError, name_settings

FIELD_LABELS = {
    "words": "Words",
    "mode": "Mode",
    "sections": "Sections",
    "n_ctx": "Context",
    "kv_type": "KV cache",
    "speculate": "Speculate",
    "temperature": "Temperature",
    "seed": "Seed",
    "model": "the model (F2)",
    "flash_attn": "flash attention",
    "n_gpu_layers": "GPU layers",
    "n_batch": "batch size",
    "quant": "a quant",
}


def field_label(setting: str) -> str:
    """What the app calls ``setting``."""
    return FIELD_LABELS.get(setting, setting.replace("_", " "))


def in_app_words(text: str) -> str:
    """A library text (a plan's suggestion, a warning) with its settings named as the app's
    fields."""
    return name_settings(text, field_label)


def error_text(exc: BaseException) -> str:
    """One line for an error: a setting error in the app's words, a file error naming the file
    the user chose, anything else with its type."""
    if isinstance(exc, SettingError):
        return exc.shown(field_label)
    if isinstance(exc, LwlocalError):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return f"{type(exc).__name__}: {exc}"
