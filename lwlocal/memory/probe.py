"""Measure what a plan predicts: peak RSS of a child process that loads a model with given
settings, fills the context and generates a few tokens.

    python -m lwlocal.memory.probe MODEL.gguf N_CTX KV_TYPE FLASH_ATTN(0|1) N_BATCH THREADS [FILL]
prints the peak RSS in bytes (FILL: context tokens to evaluate, default all).
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

from lwlocal.memory.context_settings import Settings
from lwlocal.util.errors import LwlocalError

GENERATED = 4


def peak_rss() -> int:
    """This process's peak resident set size in bytes.

    On Linux from ``VmHWM``: ``getrusage``'s maximum survives ``exec``, so a child of a large
    parent (a test run that loaded torch) would report the parent's peak.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


def measure_peak_rss(path: Path, settings: Settings, fill: int | None = None,
                     draft: Path | None = None) -> int:
    """Peak RSS in bytes of a fresh process running ``path`` with ``settings`` with ``fill``
    tokens of context evaluated (default: the whole context), speculating with the draft
    model ``draft`` when one is given."""
    args = [sys.executable, "-m", "lwlocal.memory.probe", str(path), str(settings.n_ctx),
            settings.kv_type, str(int(settings.flash_attn)), str(settings.n_batch),
            str(settings.threads), str(fill or settings.n_ctx), *([str(draft)] if draft else [])]
    proc = subprocess.run(args, capture_output=True, text=True, errors="replace")
    last = (proc.stdout.strip().splitlines() or [""])[-1]
    if proc.returncode != 0 or not last.isdigit():
        code = proc.returncode
        status = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        why = (proc.stderr.strip().splitlines() or [status])[-1]
        raise LwlocalError(f"{path}: the memory probe failed ({why[-300:]})")
    return int(last)


def _fill(path: Path, n_ctx: int, kv_type: str, flash_attn: bool, n_batch: int,
          threads: int, fill: int, draft: Path | None) -> None:
    from lwlocal.runtime.engine import Engine, Sampling
    from lwlocal.util.samples import ENGLISH

    engine = Engine(path, n_ctx=n_ctx, n_batch=n_batch, n_threads=threads,
                    flash_attn=flash_attn, kv_type=kv_type,
                    speculate="draft" if draft else "off", draft_model=draft)
    sample = engine.tokenize(ENGLISH)
    context = (sample * (n_ctx // len(sample) + 1))[: min(fill, n_ctx) - GENERATED]
    engine.generate(context, Sampling(temperature=0.0), max_tokens=GENERATED)


if __name__ == "__main__":
    model, ctx, kv, fa, batch, n_threads, filled = sys.argv[1:8]
    _fill(Path(model), int(ctx), kv, fa == "1", int(batch), int(n_threads), int(filled),
          Path(sys.argv[8]) if len(sys.argv) > 8 else None)
    print(peak_rss())
