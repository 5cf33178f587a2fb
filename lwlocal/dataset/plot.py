"""The output-length histogram of a dataset, as the LongWriter paper draws LongWriter-6k's: a PNG
(matplotlib) and bars of text for the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lwlocal.bench.plots import pyplot, save_figure

BAR_WIDTH = 40  # characters of the longest bar


def save_length_plot(stats: dict[str, Any], path: Path) -> Path:
    """The histogram of ``stats`` (from :func:`lwlocal.dataset.stats.dataset_stats`) as
    the PNG ``path``."""
    plt = pyplot()
    bins = stats["output_length"]["histogram"]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar([b["bin"] for b in bins], [b["count"] for b in bins], color="#4c72b0")
    ax.set(xlabel="output length (words + Chinese characters)", ylabel="examples",
           title=f"Output length of {stats['kept']} examples")
    ax.tick_params(axis="x", labelrotation=30)
    ax.yaxis.get_major_locator().set_params(integer=True)
    return save_figure(fig, path)


def text_histogram(stats: dict[str, Any]) -> list[str]:
    """The histogram as lines of text: each bin's label, a bar and its count."""
    bins = stats["output_length"]["histogram"]
    most = max((b["count"] for b in bins), default=0) or 1
    width = max(len(b["bin"]) for b in bins)
    return [f"{b['bin']:>{width}} {'█' * round(BAR_WIDTH * b['count'] / most):<{BAR_WIDTH}} "
            f"{b['count']}" for b in bins]
