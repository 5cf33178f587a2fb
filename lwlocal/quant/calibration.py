"""The texts shipped for calibration and evaluation, written for lwlocal (its licence):
long-form English essays and fiction chapters and Chinese essays for the importance matrix,
a held-out essay and story for quality figures, and short chat turns for comparison."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from lwlocal.util.errors import LwlocalError, SettingError

LONGFORM = ("calibration_essays.txt", "calibration_fiction.txt", "calibration_chinese.txt")
SHORT = "calibration_short.txt"
HELDOUT = "heldout_longform.txt"


def shipped(name: str) -> str:
    return (resources.files("lwlocal.quant") / "data" / name).read_text(encoding="utf-8")


def longform_calibration() -> str:
    """The default calibration text: whole essays and chapters, English then Chinese."""
    return "\n\n".join(shipped(name) for name in LONGFORM)


def read_text(path: Path | None, default: str) -> tuple[str, str]:
    """The text of ``path`` (or the shipped ``default`` file) and a label naming it."""
    if path is None:
        return (longform_calibration() if default == "longform" else shipped(default),
                f"lwlocal:{default}")
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except FileNotFoundError as exc:
        raise LwlocalError(f"{path}: no such text file") from exc
    except (UnicodeDecodeError, OSError) as exc:
        raise LwlocalError(f"{path}: not a readable UTF-8 text file ({exc})") from exc


def spread_chunks(tokens: list[int], count: int, length: int, label: str,
                  hint: str) -> list[list[int]]:
    """``count`` chunks of ``length`` consecutive tokens, spread evenly over the text (so each
    part of it, English and Chinese alike, is seen); one line naming what to change (``hint``)
    when the text is too short."""
    available = len(tokens) // length
    if available < count:
        raise SettingError(f"{label}: too little calibration text: {len(tokens):,} tokens make "
                           f"{available} chunks of {length}, {count} asked for; {hint}")
    step = available / count
    starts = [int(i * step) * length for i in range(count)]
    return [tokens[s: s + length] for s in starts]
