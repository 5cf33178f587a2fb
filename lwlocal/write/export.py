"""A job's document as Markdown, plain text or HTML (what has been written so far, for a job
that is not done)."""

from __future__ import annotations

import html
from pathlib import Path

from markdown_it import MarkdownIt

from lwlocal.util.atomic import atomic_write
from lwlocal.util.destination import check_destination
from lwlocal.util.errors import LwlocalError, SettingError
from lwlocal.util.overwrite import refuse_input_as_output
from lwlocal.write.journal import DOCUMENT, Job

EXPORT_FORMATS = {"md": "Markdown", "txt": "plain text", "html": "HTML"}


def document(job: Job) -> str:
    """The finished document, or the sections finished so far."""
    path = job.dir / DOCUMENT
    return path.read_text(encoding="utf-8") if path.is_file() else job.assemble()


def _markdown() -> MarkdownIt:
    """CommonMark with raw HTML off: a model's ``<script>`` is shown as text, never run."""
    return MarkdownIt("commonmark", {"html": False})


def plain_text(markdown: str) -> str:
    """The text of each heading, paragraph and code block, without Markdown marks."""
    breaks = {"softbreak": "\n", "hardbreak": "\n"}
    blocks = []
    for token in _markdown().parse(markdown):
        if token.type == "inline":
            blocks.append("".join(child.content if child.type in ("text", "code_inline")
                                  else breaks.get(child.type, "")
                                  for child in token.children or []))
        elif token.type in ("fence", "code_block"):
            blocks.append(token.content.rstrip("\n"))
    return "\n\n".join(blocks) + "\n"


def as_html(markdown: str, title: str) -> str:
    body = _markdown().render(markdown)
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}'
            f"</title></head>\n<body>\n{body}</body></html>\n")


def export(job: Job, fmt: str, out: Path) -> Path:
    """Write the job's document to ``out`` in ``fmt`` (md, txt, html)."""
    if fmt not in EXPORT_FORMATS:
        raise SettingError(f"{{format}} {fmt!r}: choose one of {', '.join(EXPORT_FORMATS)}")
    refuse_input_as_output(out, {"job": job.dir})
    text = document(job)
    if not text.strip():
        raise LwlocalError(f"{job.id}: nothing written yet")
    rendered = {"md": text, "txt": plain_text(text),
                "html": as_html(text, job.meta.settings.prompt or job.id)}[fmt]
    check_destination(out, len(rendered.encode()))
    atomic_write(out, rendered)
    return out
