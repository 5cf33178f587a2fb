"""JSON schemas as llama.cpp grammars, refused in one line where they would be too big.

llama-cpp-python's converter writes every repetition out (a ``minItems`` of a billion never
finishes and takes all memory) and llama.cpp's grammar parser recurses once per nested group (a
``maxLength`` of 100,000 overflows its stack and kills the process), so the repetitions a schema
may ask for and the size of its grammar are bounded before either runs.
"""

from __future__ import annotations

import json
import re
from typing import Any

from llama_cpp.llama_grammar import json_schema_to_gbnf

from lwlocal.util.errors import LwlocalError

MAX_REPEAT = 1000  # llama.cpp refuses most repetitions above this anyway
MAX_GRAMMAR_CHARS = 1 << 20
REPEAT_KEYWORDS = frozenset({"minItems", "maxItems", "minLength", "maxLength", "minProperties",
                             "maxProperties", "minContains", "maxContains"})
_QUANTIFIER = re.compile(r"\{(\d*)(?:,(\d*))?\}")  # a regular expression's {n}, {m,}, {m,n}


def _check_pattern(pattern: str) -> None:
    """Refuse a ``pattern`` whose quantifiers, written out, would make too big a grammar (an
    upper bound: each quantifier multiplies, as it does when groups nest)."""
    size = len(pattern)
    for match in _QUANTIFIER.finditer(pattern):
        digits = [d for d in match.groups() if d]
        if any(len(d) > len(str(MAX_REPEAT)) or int(d) > MAX_REPEAT for d in digits):
            raise LwlocalError(f"the JSON schema's pattern repeats more than {MAX_REPEAT} "
                               f"times ({match.group()})")
        size *= max((int(d) for d in digits), default=1) or 1
        if size > MAX_GRAMMAR_CHARS:
            raise LwlocalError("the JSON schema's pattern has too many repetitions to make a "
                               "grammar of")


def _check_repetitions(schema: Any) -> None:
    """Refuse repetition counts above ``MAX_REPEAT`` anywhere in the schema."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            for key, value in node.items():
                if (key in REPEAT_KEYWORDS and isinstance(value, (int, float))
                        and value > MAX_REPEAT):
                    raise LwlocalError(f"the JSON schema's {key} is above {MAX_REPEAT}")
                if key == "pattern" and isinstance(value, str):
                    _check_pattern(value)
                stack.append(value)


def json_grammar(schema: dict[str, Any]) -> str:
    """The GBNF grammar that makes a reply follow ``schema``; a one-line error for a schema that
    cannot be made one or would make one too big."""
    _check_repetitions(schema)
    try:
        grammar = json_schema_to_gbnf(json.dumps(schema))
    except Exception as exc:  # the converter raises many kinds on a schema it cannot read
        raise LwlocalError(f"the JSON schema cannot be made a grammar ({exc})") from exc
    if len(grammar) > MAX_GRAMMAR_CHARS:
        raise LwlocalError(f"the JSON schema's grammar would take {len(grammar):,} characters "
                           f"(at most {MAX_GRAMMAR_CHARS:,})")
    return grammar
