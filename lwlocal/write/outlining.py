"""A job's outline: asked of the model under the outline's JSON schema, checked, asked again
with its problems named, and mended; or, for a single-pass job, one section."""

from __future__ import annotations

import threading
from dataclasses import replace

from lwlocal.runtime.chat import ChatBackend, Hooks, Message
from lwlocal.runtime.engine import Sampling
from lwlocal.util.errors import LwlocalError
from lwlocal.util.json_object import json_object
from lwlocal.util.progress import Progress, ProgressCallback, ignore
from lwlocal.write.outline import (
    Outline,
    Section,
    max_outline_tokens,
    outline_prompt,
    outline_schema,
    parse_model_outline,
    section_range,
    section_schema,
)
from lwlocal.write.outline_check import problems as outline_problems
from lwlocal.write.outline_check import repair as repair_outline
from lwlocal.write.outline_stream import OutlineStream

OUTLINE_ATTEMPTS = 3  # outlines asked for before the best is mended
# problems an outline needs to be asked for again: one is mended. Of 18 outlines of the default
# model (6 prompts, 3 seeds, asked again at any problem: benchmarks/outline_tries.py), a later
# try had fewer problems for 6 of the 7 with two or more, and for 1 of the 5 with one; the
# 5,000-word bread guide's outline (one problem) took 1,338 tokens in three tries, 621 in one
# (benchmarks/results/time_plan*.json). One whose mending would merge the outline below the
# fewest sections asked for is asked for again all the same.
RETRY_PROBLEMS = 2
OUTLINE_AGAIN = ("\n\nAn earlier answer had these problems, which yours must not have: "
                 "{problems}. Give every section a title of its own, about the subject.")
# a mended outline with fewer sections than asked for (`make demo`'s `--sections 4` came out
# with 2: two of its titles were the request's own words) gets the rest one at a time
ADD_SECTION = ("Instruction: {prompt}\n\nA {words}-word text for it is planned in these "
               "sections:\n{sections}\n\nGive one more section for it, on a part of the "
               "subject that none of these covers, in JSON: its title (a few words about the "
               "subject), its main point (a sentence or two) and its words.")
ADD_TRIES = 3  # sections asked for, each with a seed of its own, before one is given up


def draft_outline(
    chat: ChatBackend,
    prompt: str,
    words: int,
    sampling: Sampling,
    n_sections: tuple[int, int] | None = None,
    progress: ProgressCallback = ignore,
    cancel: threading.Event | None = None,
) -> Outline:
    """Ask the model for an outline, decoded under the outline's JSON schema (closed before a
    section that repeats an earlier one: :class:`OutlineStream`), and check it: an outline
    with ``RETRY_PROBLEMS`` problems or more (titles alike, titles about the writing) is asked
    for again with the problems named (``OUTLINE_ATTEMPTS`` tries in all), and what is left
    (the fewest problems' outline) is mended (see
    :mod:`lwlocal.write.outline_check`), each change reported as a ``notice`` and kept in the
    outline's ``changes``. Reports the prompt's evaluation (``prompt``) and the outline's
    tokens (``plan``), and raises KeyboardInterrupt when ``cancel`` is set."""
    n_sections = n_sections or section_range(words)
    request = outline_prompt(prompt, words, n_sections)
    text_so_far: list[str] = []
    stream = OutlineStream(n_sections[0])

    def on_text(piece: str) -> None:
        text_so_far.append(piece)
        stream.add(piece)
        progress(Progress("outline", text=piece, done=len(text_so_far)))

    def on_retry() -> None:
        text_so_far.clear()
        stream.reset()

    def on_prefill(done: int, total: int) -> None:
        progress(Progress("prompt", done=done, total=total))

    best: tuple[int, Outline, list[str]] | None = None  # problems, outline, its cut
    note = ""
    for attempt in range(OUTLINE_ATTEMPTS):
        on_retry()
        result = chat.complete(
            [Message("user", request + note)],
            Sampling(**{**vars(sampling), "seed": sampling.seed + attempt}),
            max_tokens=max_outline_tokens(n_sections),
            json_schema=outline_schema(n_sections),
            hooks=Hooks(on_text=on_text, on_prefill=on_prefill, on_retry=on_retry,
                        should_stop=lambda: stream.looped, cancel=cancel),
        )
        if result.stop == "cancelled":
            raise KeyboardInterrupt
        text, cut = result.text, []
        if stream.looped and stream.repeat is not None:
            text = stream.closed()
            cut = [f"closed before section {stream.repeat[0]}, which repeated section "
                   f"{stream.repeat[1]} (a loop)"]
        try:
            outline = parse_model_outline(text, prompt, words)
        except LwlocalError:
            if attempt == OUTLINE_ATTEMPTS - 1 and best is None:
                raise
            continue
        found = outline_problems(outline)
        if best is None or len(found) < best[0]:
            best = (len(found), outline, cut)
        if len(found) < RETRY_PROBLEMS and (  # every earlier try had more: this is the best
                not found or len(repair_outline(outline)[0].sections) >= n_sections[0]):
            break  # (unless mending it would merge it below the fewest sections asked for)
        titles = [s.title for s in outline.sections]
        note = OUTLINE_AGAIN.format(problems="; ".join(p.describe(titles) for p in found))
    assert best is not None
    outline, mended = repair_outline(best[1])
    if len(outline.sections) < n_sections[0]:
        outline, added = _with_sections_added(chat, outline, n_sections[0], sampling, cancel)
        mended += added
    changes = [*best[2], *mended]
    for change in changes:
        progress(Progress("notice", message=f"outline: {change}"))
    outline.changes = changes
    return outline


def _with_sections_added(chat: ChatBackend, outline: Outline, fewest: int, sampling: Sampling,
                         cancel: threading.Event | None) -> tuple[Outline, list[str]]:
    """``outline`` with sections the model adds after the others, one at a time, until it has
    ``fewest``: each offered one is given half the words of the longest section and mended as
    outlines are, and added where that keeps it (a title alike to another made from its main
    point, say); a line for each change (and one where none of ``ADD_TRIES`` offers was)."""
    changes: list[str] = []
    seed = sampling.seed + OUTLINE_ATTEMPTS  # seeds of their own
    while len(outline.sections) < fewest:
        sections = outline.sections
        listed = "\n".join(f"{i}. {s.title}: {s.main_point}" for i, s in enumerate(sections, 1))
        request = ADD_SECTION.format(prompt=outline.prompt, words=outline.words,
                                     sections=listed)
        longest = max(range(len(sections)), key=lambda i: sections[i].words)
        half = sections[longest].words // 2
        shorter = replace(sections[longest], words=sections[longest].words - half)
        for _ in range(ADD_TRIES):
            result = chat.complete([Message("user", request)],
                                   Sampling(**{**vars(sampling), "seed": seed}),
                                   max_tokens=max_outline_tokens((1, 1)),
                                   json_schema=section_schema(), hooks=Hooks(cancel=cancel))
            seed += 1
            if result.stop == "cancelled":
                raise KeyboardInterrupt
            offered = _offered_section(result.text, half)
            if offered is None:
                continue
            tried = [*sections[:longest], shorter, *sections[longest + 1:], offered]
            mended, lines = repair_outline(replace(outline, sections=tried))
            if len(mended.sections) == len(tried):
                changes += [f"section {len(tried)} added, '{offered.title}', for the {fewest} "
                            f"sections asked for ({half} of section {longest + 1}'s words)",
                            *lines]
                outline = mended
                break
        else:
            changes.append(f"{len(sections)} sections of the {fewest} asked for: none of the "
                           f"{ADD_TRIES} the model offered to add was about the subject and "
                           "unlike the others")
            break
    return outline, changes


def _offered_section(text: str, words: int) -> Section | None:
    """The section of ``words`` a reply under ``section_schema`` offers, or None where it is
    not one."""
    data = json_object(text)
    if data is None:
        return None
    title, point = data.get("title"), data.get("main_point")
    if not (isinstance(title, str) and title.strip() and isinstance(point, str)
            and point.strip()):
        return None
    return Section(title.strip(), point.strip(), words)


def direct_outline(prompt: str, words: int) -> Outline:
    """The one-section outline of a single-pass (direct) job."""
    return Outline(prompt=prompt, words=words, sections=[Section("", prompt, words)])
