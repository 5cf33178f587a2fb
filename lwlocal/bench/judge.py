"""A local judge of writing quality: a GGUF model scores a response on LongBench-Write's six
dimensions, its answer constrained to a JSON object by a grammar."""

from __future__ import annotations

import json

from lwlocal.models.catalogue import resolve
from lwlocal.runtime.engine import Engine, Sampling
from lwlocal.util.errors import LwlocalError

DIMENSIONS = ("relevance", "accuracy", "coherence", "clarity", "breadth_and_depth",
              "reading_experience")
SCHEMA = {
    "type": "object",
    "properties": {d: {"type": "integer", "enum": list(range(1, 11))} for d in DIMENSIONS},
    "required": list(DIMENSIONS),
    "additionalProperties": False,
}
JUDGE_PROMPT = """\
You are a strict reviewer of long-form writing. Read the writing request and the response, \
then give the response a score from 1 (very poor) to 10 (excellent) on each of: relevance (does \
it do what was asked), accuracy (are its facts and claims right), coherence (does it hang \
together from start to end), clarity (is it easy to follow), breadth_and_depth (does it cover \
the subject fully and in depth), reading_experience (is it pleasant to read). Length is judged \
elsewhere: do not score it. Answer with the JSON object only.

Request:
{prompt}

Response:
{response}"""
CUT = "\n\n[... middle of the response left out to fit the judge's context ...]\n\n"
ANSWER_TOKENS = 120


def quality_score(scores: dict[str, int]) -> float:
    """S_q: the mean of the six scores, on a 0-100 scale."""
    return 10 * sum(scores[d] for d in DIMENSIONS) / len(DIMENSIONS)


class Judge:
    """A judge model loaded once for every response of a run."""

    def __init__(self, model: str, *, n_ctx: int = 8192, n_threads: int | None = None) -> None:
        resolved = resolve(model)
        self.name = resolved.name
        self.format = resolved.format
        self.engine = Engine(resolved.path, n_ctx=min(n_ctx, resolved.context_length),
                             n_threads=n_threads)

    def _fit(self, prompt: str, response: str) -> str:
        """The response, its middle left out when it would not fit the context."""
        room = self.engine.n_ctx - ANSWER_TOKENS - len(self.engine.tokenize(
            self.format.first_turn(JUDGE_PROMPT.format(prompt=prompt, response="") + CUT)))
        tokens = self.engine.tokenize(response)
        if len(tokens) <= room:
            return response
        half = room // 2
        return (self.engine.detokenize(tokens[:half]) + CUT
                + self.engine.detokenize(tokens[-half:]))

    def score(self, prompt: str, response: str) -> dict[str, int]:
        content = JUDGE_PROMPT.format(prompt=prompt, response=self._fit(prompt, response))
        context = self.engine.tokenize(self.format.first_turn(content), start=True)
        result = self.engine.generate(context, Sampling(temperature=0.0, seed=0),
                                      max_tokens=ANSWER_TOKENS, json_schema=SCHEMA)
        try:
            scores = json.loads(result.text)
            return {d: int(scores[d]) for d in DIMENSIONS}
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise LwlocalError(f"judge {self.name}: answer is not the scores object "
                               f"({result.text[:80]!r})") from exc
