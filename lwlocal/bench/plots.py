"""The benchmark's plots, as PNG files (matplotlib, from the ``bench`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lwlocal.bench.items import RANGES
from lwlocal.bench.run import BenchResult
from lwlocal.util.destination import replacing, write_error
from lwlocal.util.errors import LwlocalError


def pyplot() -> Any:
    """matplotlib's pyplot, drawing to files; without matplotlib, a one-line error."""
    try:
        import matplotlib
    except ImportError as exc:
        raise LwlocalError("plots need matplotlib: pip install 'lwlocal[bench]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_plots(results: list[BenchResult], summary: list[dict[str, Any]], folder: Path
               ) -> list[Path]:
    """Output vs required length (log axes, y = x), S_l per length range, decode speed."""
    plt = pyplot()
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        raise write_error(folder, exc) from exc
    runs = [(row["model"], row["mode"]) for row in summary]
    label = {run: f"{Path(run[0]).name} {run[1]}" for run in runs}
    paths = []

    fig, ax = plt.subplots(figsize=(6, 5))
    lengths = [r.required for r in results] + [r.length for r in results if r.length]
    for run in runs:
        mine = [r for r in results if (r.model, r.mode) == run and r.length]
        ax.scatter([r.required for r in mine], [r.length for r in mine], label=label[run])
    if lengths:
        ax.plot([min(lengths), max(lengths)], [min(lengths), max(lengths)], "k--", lw=1,
                label="y = x")
    ax.set(xscale="log", yscale="log", xlabel="required length",
           ylabel="output length (words + Chinese characters)", title="Output vs required length")
    ax.legend(fontsize=8)
    paths.append(save_figure(fig, folder / "length_vs_required.png"))

    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / max(1, len(runs))
    for k, row in enumerate(summary):
        values = [row[f"length_score_{name}"] or 0 for name, _, _ in RANGES]
        ax.bar([i + k * width for i in range(len(RANGES))], values, width,
               label=label[(row["model"], row["mode"])])
    ax.set_xticks([i + width * (len(runs) - 1) / 2 for i in range(len(RANGES))],
                  [name for name, _, _ in RANGES])
    ax.set(ylabel="S_l", ylim=(0, 100), title="Length score per required length")
    ax.legend(fontsize=8)
    paths.append(save_figure(fig, folder / "length_score_by_range.png"))

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.barh([label[run] for run in runs], [row["decode_tokens_per_s"] or 0 for row in summary])
    ax.set(xlabel="decode tokens/s", title="Throughput")
    paths.append(save_figure(fig, folder / "throughput.png"))
    return paths


def save_figure(fig: Any, path: Path) -> Path:
    """``fig`` as the PNG ``path``, written under a temporary name."""
    fig.tight_layout()
    with replacing(path, ".partial.png") as tmp:  # a full disk: one line, no partial plot
        fig.savefig(tmp, dpi=110)
    return path
