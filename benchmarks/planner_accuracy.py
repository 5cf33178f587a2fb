"""Predicted vs measured peak RSS of the default model over the planner's validation grid.

For each point a child process loads the model, fills the context and generates a few tokens;
its peak RSS is compared with the planner's prediction. VRAM cannot be measured without a GPU:
it is predicted from llama.cpp's buffer sizes and printed as unmeasured.

    .venv/bin/python benchmarks/planner_accuracy.py [--model PATH]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lwlocal.memory.allocations import MiB, predict
from lwlocal.memory.context_settings import Settings
from lwlocal.memory.model_shape import shape_from_gguf
from lwlocal.memory.probe import measure_peak_rss
from lwlocal.models.catalogue import resolve
from lwlocal.util.cpu import physical_cores

# Where the planner's RAM model is checked: context x KV type x flash attention, where valid
# (a quantized V cache needs flash attention). tests/test_planner_measured.py runs two points.
VALIDATION_GRID = [
    (n_ctx, kv_type, flash_attn)
    for n_ctx in (2048, 8192)
    for kv_type, flash_attn in (("f16", False), ("f16", True), ("q8_0", True), ("q4_0", True))
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="GGUF path or card (default model)")
    args = parser.parse_args()
    path = resolve(args.model).path
    shape = shape_from_gguf(path)
    worst = 0.0
    print(f"{'n_ctx':>6} {'kv':>5} {'fa':>3} {'predicted MiB':>14} {'measured MiB':>13} "
          f"{'error':>7}")
    rows = []
    for n_ctx, kv_type, flash_attn in VALIDATION_GRID:
        settings = Settings(n_ctx, kv_type, flash_attn, 0, 512, physical_cores())
        predicted = predict(shape, settings).ram_bytes
        measured = measure_peak_rss(path, settings)
        error = predicted / measured - 1
        worst = max(worst, abs(error))
        rows.append({"n_ctx": n_ctx, "kv_type": kv_type, "flash_attn": flash_attn,
                     "predicted_bytes": predicted, "measured_bytes": measured,
                     "error": round(error, 4)})
        print(f"{n_ctx:>6} {kv_type:>5} {'on' if flash_attn else 'off':>3} "
              f"{predicted / MiB:>14.1f} {measured / MiB:>13.1f} {error:>+7.1%}", flush=True)
    print(f"worst error {worst:.1%} (goal: within 10% on every point); VRAM: unmeasured here")
    print(json.dumps({"model": Path(path).name, "points": rows, "worst_error": round(worst, 4)}))


if __name__ == "__main__":
    main()
