"""What the streaming guard costs a token: each section of the documents of a
`document_quality.py` run fed to a `SectionGuard` in the pieces the default model's tokenizer
makes of it, timed in the thread's CPU time (so other work on the machine does not count), per
piece, as a share of the time a token takes to decode at ``--decode-tokens-per-s`` (the
writer's decode speed on the same machine, measured quietly: `write_throughput.py`).

    PYTHONPATH=. .venv/bin/python benchmarks/guard_cost.py --decode-tokens-per-s 66.6
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import llama_cpp

from lwlocal.models.catalogue import embedded_model_path
from lwlocal.write.faults import Memory
from lwlocal.write.guard import SectionGuard
from lwlocal.write.journal import Job

RESULTS = Path(__file__).parent / "results" / "document_quality.json"


def pieces(vocab: llama_cpp.Llama, text: str) -> list[str]:
    """``text`` as the pieces the model streams it in (one a token)."""
    tokens = vocab.tokenize(text.encode(), add_bos=False, special=False)
    return [vocab.detokenize([t]).decode("utf-8", "replace") for t in tokens]


def guard_seconds(job: Job, vocab: llama_cpp.Llama) -> tuple[float, int]:
    """The CPU seconds the guard takes over ``job``'s sections, and the pieces it was given."""
    titles = [s.title for s in job.outline().sections]
    spent, count = 0.0, 0
    for index in range(1, len(titles) + 1):
        earlier = Memory(job.section_text(i) or "" for i in range(1, index))
        guard = SectionGuard(index, titles, earlier)
        for piece in pieces(vocab, job.section_text(index) or ""):
            started = time.thread_time()
            guard.add(piece)
            spent += time.thread_time() - started
            count += 1
            if guard.fault is not None:  # as the writer does: the text is taken as it stands
                guard.restart(guard.text)
    return spent, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label", default="after", help="The document_quality run to read.")
    parser.add_argument("--decode-tokens-per-s", type=float, required=True,
                        help="The writer's decode speed on this machine, measured quietly.")
    args = parser.parse_args()
    model = embedded_model_path()
    assert model is not None
    vocab = llama_cpp.Llama(str(model), vocab_only=True, verbose=False)
    rows = json.loads(RESULTS.read_text())[args.label]["items"]
    shares = []
    for row in rows:
        job = Job.open(row["job"], Path(row["job"]).parent)
        spent, count = guard_seconds(job, vocab)
        per_piece = spent / count
        per_token = 1 / args.decode_tokens_per_s
        shares.append(per_piece / per_token)
        print(f"{row['id']}: {count} pieces, guard {per_piece * 1e6:.0f} µs a piece, decode "
              f"{per_token * 1e3:.1f} ms a token: {per_piece / per_token:.2%}")
    print(f"median {statistics.median(shares):.2%}, max {max(shares):.2%} of a token's time")


if __name__ == "__main__":
    main()
