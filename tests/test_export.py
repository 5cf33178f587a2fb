"""Exporting a job's document (Markdown, plain text, HTML), from the library code and the CLI;
the model catalog the TUI and ``lwlocal models`` list."""

from __future__ import annotations

import os

import pytest

from lwlocal.models.catalogue import catalog
from lwlocal.models.gguf_file import file_quant
from lwlocal.util.errors import LwlocalError
from lwlocal.util.paths import jobs_dir, models_dir
from lwlocal.write.export import export, plain_text
from lwlocal.write.journal import Job
from lwlocal.write.outline import Outline, Section
from lwlocal.write.settings import JobSettings
from tests.support.cli import invoke


@pytest.fixture
def job(lw_home) -> Job:
    job = Job.create(jobs_dir(), JobSettings("Tea <guide>", 20, mode="agentwrite"))
    job.save_outline(Outline("Tea <guide>", 20, [Section("Leaves", "which", 10),
                                                 Section("Water", "how hot", 10)]))
    job.save_section(1, "Sencha is **bright** and grassy.")
    return job


def test_unfinished_job_exports_its_finished_sections(job, tmp_path):
    md = export(job, "md", tmp_path / "a.md").read_text()
    assert md == "## Leaves\n\nSencha is **bright** and grassy.\n"
    assert export(job, "txt", tmp_path / "a.txt").read_text() == (
        "Leaves\n\nSencha is bright and grassy.\n")
    page = export(job, "html", tmp_path / "a.html").read_text()
    assert "<h2>Leaves</h2>" in page and "<strong>bright</strong>" in page
    assert "<title>Tea &lt;guide&gt;</title>" in page
    job.save_section(2, "Use water at 70 °C.")
    assert "## Water" in export(job, "md", tmp_path / "b.md").read_text()


def test_html_from_the_model_is_shown_not_run(job, tmp_path):
    job.save_section(2, 'Steep <script>alert("tea")</script> then <img src=x onerror=alert(1)>'
                        '\n\n<div onclick="x">a block</div>')
    page = export(job, "html", tmp_path / "a.html").read_text()
    assert "<script>" not in page and "<img" not in page and "<div" not in page
    assert "&lt;script&gt;alert(&quot;tea&quot;)&lt;/script&gt;" in page
    assert "&lt;div onclick=&quot;x&quot;&gt;a block&lt;/div&gt;" in page
    assert "<script>" in export(job, "txt", tmp_path / "a.txt").read_text()  # text, as written


def test_plain_text_keeps_words_in_underscores():
    assert plain_text("# T\n\nsnake_case, *x* and __y__\n\n- a `b`") == (
        "T\n\nsnake_case, x and y\n\na b\n")


def test_export_refuses_what_cannot_be_exported(job, lw_home, tmp_path):
    with pytest.raises(LwlocalError, match="choose one of"):
        export(job, "pdf", tmp_path / "a.pdf")
    empty = Job.create(jobs_dir(), JobSettings("x", 5))
    with pytest.raises(LwlocalError, match="nothing written yet"):
        export(empty, "md", tmp_path / "e.md")
    assert not (tmp_path / "e.md").exists()


def test_export_command(job, lw_home, tmp_path):
    out = tmp_path / "tea.html"
    invoke("export", job.id, "--format", "html", "-o", str(out), check=True)
    assert "<h2>Leaves</h2>" in out.read_text()
    proc = invoke("export", "nosuchjob", "-o", str(out))
    assert proc.returncode == 1 and proc.stderr.startswith("lwlocal: error: nosuchjob")


def test_catalog_lists_cards_and_local_ggufs(lw_home, default_model):
    models_dir().mkdir(parents=True)
    os.symlink(default_model, models_dir() / "my-model.gguf")
    entries = {e.name: e for e in catalog()}
    assert {"longwriter-glm4-9b", "longwriter-llama3.1-8b", "smollm2-135m",
            "my-model.gguf"} <= set(entries)
    assert entries["longwriter-glm4-9b"].path is None
    assert entries["my-model.gguf"].card is None and entries["my-model.gguf"].size_bytes
    assert file_quant(entries["smollm2-135m"].path) == "Q4_1"
