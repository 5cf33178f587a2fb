"""What asking for an outline again does: the problems of each try, on the default model.

Six prompts (a guide, a history, an essay, a story; 450 to 3,000 words), each with three base
seeds, outlined as ``lwlocal write`` does (``Session.outline()``: the outline's check, its
tries and its mending). For each outline: the problems of every try, in order
(``outline_check.problems``), the sections the mended outline has and the fewest asked for.
``first_problems`` tallies, by the first try's problems, whether a later try had fewer.

    PYTHONPATH=. .venv/bin/python benchmarks/outline_tries.py [--retry-problems 1]

``--retry-problems 1`` asks again at any problem, as lwlocal did before 1 was mended (the
tally of whether asking again helped needs it). Writes
``benchmarks/results/outline_tries.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from lwlocal.runtime.engine import Sampling
from lwlocal.write import outlining
from lwlocal.write.jobs import Session
from lwlocal.write.outline import Outline
from lwlocal.write.settings import JobSettings

PROMPTS = [
    ("Write a short guide to keeping a vegetable garden through its first year.", 450, 4),
    ("Write a guide to the history, craft and science of bread baking, from ancient grains to "
     "modern sourdough.", 2000, None),
    ("Write a 3000-word history of the bicycle.", 3000, None),
    ("Write an essay on why cities should plant more trees.", 1000, None),
    ("Write a story about a lighthouse keeper who finds a message in a bottle.", 1500, None),
    ("Write a guide to learning to play the guitar as an adult.", 1200, None),
]
SEEDS = (42, 1000, 2000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "outline_tries.json")
    parser.add_argument("--retry-problems", type=int, default=outlining.RETRY_PROBLEMS)
    args = parser.parse_args()
    outlining.RETRY_PROBLEMS = args.retry_problems
    tries: list[int] = []  # the problems of each try of the outline being drafted
    checked = outlining.outline_problems

    def counting(outline: Outline) -> list[Any]:
        found = checked(outline)
        tries.append(len(found))
        return found

    outlining.outline_problems = counting  # type: ignore[assignment]
    rows, session, started = [], None, time.perf_counter()
    for seed in SEEDS:
        for prompt, words, sections in PROMPTS:
            settings = JobSettings(prompt=prompt, words=words, sections=sections,
                                   sampling=Sampling(seed=seed))
            session = Session(settings) if session is None else session.with_settings(settings)
            tries.clear()
            outline = session.outline()
            rows.append({"prompt": prompt, "seed": seed, "tries": list(tries),
                         "sections": len(outline.sections),
                         "fewest_asked": settings.section_range[0],
                         "titles": [s.title for s in outline.sections]})
            print(json.dumps(rows[-1]), flush=True)
    helped: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # first try's problems: [n, better]
    for row in rows:
        first = row["tries"][0] if row["tries"] else 0
        if first and len(row["tries"]) > 1:
            tally = helped["1" if first == 1 else "2 or more"]
            tally[0] += 1
            tally[1] += min(row["tries"][1:]) < first
    result = {"outlines": rows, "seconds": round(time.perf_counter() - started, 1),
              "retry_problems": outlining.RETRY_PROBLEMS,
              "first_problems": {k: {"outlines": n, "a_later_try_better": b}
                                 for k, (n, b) in sorted(helped.items())},
              "below_fewest": sum(r["sections"] < r["fewest_asked"] for r in rows)}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "outlines"}))


if __name__ == "__main__":
    main()
