"""A lookup measurement kept in the lwlocal home, as ``--speculate auto`` finds it."""

from __future__ import annotations

from lwlocal.models.catalogue import resolve
from lwlocal.util.cpu import default_threads
from lwlocal.util.measurements import keep_entry
from lwlocal.write.lookup_gain import LookupGain, gain_file, gain_key


def keep_lookup_gain(batch_of_three: float) -> LookupGain:
    """Lookup measured on the default model with the default threads: 100 single tokens and 50
    batches of a token and two guesses over 250 tokens, a batch of three costing
    ``batch_of_three`` tokens' time (1.2: lookup pays, 3.0: it does not)."""
    model = resolve(None).path
    kept = LookupGain(gain_key(model, default_threads()), {1: 100, 3: 50},
                      {1: 1.0, 3: batch_of_three}, 250, 150, 50)
    keep_entry(gain_file(), kept.key, kept.as_dict())
    return kept
