"""`lwlocal dataset` on the fake chat backend: a build kept and rejected as the filters say, in
LongWriter-6k's layout, resumed without duplicates; each filter with a case it rejects; the
stats, their plot and the exports; jobs spread over servers, least-loaded first; bad input."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path

import pytest

from lwlocal.bench.items import BenchItem
from lwlocal.cli.options import ServerOptions
from lwlocal.dataset.filters import Filters, duplicate_instructions
from lwlocal.dataset.ledger import DATA, REJECTED, Ledger, read_examples
from lwlocal.openai.endpoint import Server
from lwlocal.write import batch
from lwlocal.write.review import review
from lwlocal.write.settings import JobSettings
from tests.support.cli import invoke

TEA = "Write a guide to brewing green tea at home."
RIVERS = "Write an essay on why rivers flood in spring."
PROMPTS = [
    {"id": "tea", "prompt": TEA, "length": 200},
    {"id": "tea-again", "prompt": "write a guide to brewing GREEN tea at home!", "length": 200},
    {"id": "yangtze", "prompt": "写一篇关于长江的文章。", "length": 200},
    {"id": "rivers", "prompt": RIVERS, "length": 400},
    {"id": "long", "prompt": "Write a history of the bicycle.", "length": 900},
]
FILTERS = ["--min-words", "100", "--max-words", "600"]


def write_prompts(folder: Path, rows: list[dict] = PROMPTS) -> Path:
    path = folder / "prompts.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def built(fake_model, tmp_path) -> Path:
    out = tmp_path / "set"
    invoke("dataset", "build", str(write_prompts(tmp_path)), "-o", str(out), *FILTERS,
           check=True)
    return out


def test_a_build_keeps_what_passes_in_longwriter_6k_layout(built, fake_model):
    records = lines(built / DATA)
    assert [r["messages"][0]["content"] for r in records] == [TEA, RIVERS]
    for record in records:
        user, assistant = record["messages"]
        assert list(record) == ["messages"] and (user["role"], assistant["role"]) == (
            "user", "assistant")
        assert assistant["content"].startswith("## ") and len(assistant["content"].split()) > 100
    rejected = {row["id"]: row for row in lines(built / REJECTED)}
    assert rejected["tea-again"]["reasons"] == ["duplicate"]
    assert rejected["tea-again"]["why"] == ["the instruction of tea"]
    assert rejected["yangtze"]["reasons"] == ["language"]
    assert rejected["yangtze"]["why"] == ["written in English, asked in Chinese"]
    assert rejected["long"]["reasons"] == ["length"] and rejected["long"]["words"] > 600
    assert len(fake_model.requests) > 0 and (built / "report.json").is_file()


def test_a_rerun_decides_nothing_again(built, fake_model, tmp_path):
    before = ((built / DATA).read_bytes(), (built / REJECTED).read_bytes())
    asked = len(fake_model.requests)
    again = invoke("dataset", "build", str(tmp_path / "prompts.jsonl"), "-o", str(built),
                   *FILTERS, "--json", check=True)
    result = json.loads(again.stdout)
    assert (result["kept"], result["rejected"], result["report"]) == (0, {}, None)
    assert (result["total_kept"], result["total_rejected"]) == (2, 3)
    assert ((built / DATA).read_bytes(), (built / REJECTED).read_bytes()) == before
    assert len(fake_model.requests) == asked


def test_a_finished_job_not_yet_recorded_is_judged_on_the_rerun(built, fake_model, tmp_path):
    """As after kill -9 between a job's end and its line: the job is done, its line missing (and
    a line cut short in its place)."""
    data = (built / DATA).read_bytes()
    first_line_end = data.index(b"\n") + 1
    (built / DATA).write_bytes(data[:first_line_end] + data[first_line_end:][:40])
    asked = len(fake_model.requests)
    invoke("dataset", "build", str(tmp_path / "prompts.jsonl"), "-o", str(built), *FILTERS,
           check=True)
    assert (built / DATA).read_bytes() == data  # the cut line replaced by the whole one
    assert len(fake_model.requests) == asked  # from the journal: nothing written again


def test_stats_count_kept_rejected_lengths_languages_tokens(built):
    figures = json.loads(invoke("dataset", "stats", str(built), "--json", check=True).stdout)
    assert (figures["kept"], figures["rejected"]) == (2, 3)
    assert figures["rejected_by_reason"] == {"duplicate": 1, "language": 1, "length": 1}
    assert figures["languages"] == {"en": 2}
    histogram = {b["bin"]: b["count"] for b in figures["output_length"]["histogram"]}
    assert sum(histogram.values()) == 2 and histogram["250-500"] >= 1
    assert figures["output_length"]["total"] >= 2 * 100
    assert figures["tokens"] > figures["output_length"]["total"]
    assert Path(figures["plot"]).read_bytes().startswith(b"\x89PNG")
    shown = invoke("dataset", "stats", str(built), check=True).stdout
    assert "2 examples kept, 3 rejected (duplicate 1, language 1, length 1)" in shown
    assert "250-500 █" in shown and "languages: en 2" in shown


@pytest.mark.parametrize("layout,first", [
    ("messages", {"role": "user", "content": TEA}),
    ("sharegpt", {"from": "human", "value": TEA}),
])
def test_export_as_chat(built, tmp_path, layout, first):
    out = tmp_path / f"{layout}.jsonl"
    invoke("dataset", "export", str(built), "--format", layout, "-o", str(out), check=True)
    rows = lines(out)
    assert len(rows) == 2 and next(iter(rows[0].values()))[0] == first


def test_export_as_alpaca(built, tmp_path):
    out = tmp_path / "alpaca.jsonl"
    invoke("dataset", "export", str(built), "--format", "alpaca", "-o", str(out), check=True)
    row = lines(out)[0]
    assert (row["instruction"], row["input"]) == (TEA, "") and row["output"].startswith("## ")


def test_export_as_parquet(built, tmp_path):
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "train.parquet"
    invoke("dataset", "export", str(built), "-o", str(out), check=True)
    table = datasets.Dataset.from_parquet(str(out))
    assert table.num_rows == 2 and table[0]["messages"][0] == {"role": "user", "content": TEA}


def judged(document: str, instruction: str = TEA, titles=("Leaves", "Water"),
           **thresholds) -> list[str]:
    """The filters failed by a two-section document (its sections split at a blank line)."""
    texts = document.split("\n\n")
    found = review(list(titles), texts).as_dict()
    return [r.reason for r in Filters(**{"min_words": 20, **thresholds}).judge(
        instruction, document, found)]


PROSE = ("Green tea leaves are picked in spring and dried with care before they are sold. "
         "Good water is soft and fresh and never quite boiling when it meets the leaves.")
WATER = ("Pour the water slowly over the leaves and wait two minutes before the first cup. "
         "A second steeping brings out a sweeter taste than the first one had.")


@pytest.mark.parametrize("document,thresholds,reason", [
    (PROSE + "\n\n" + WATER, {"min_words": 100}, "length"),
    (PROSE + "\n\n" + WATER, {"max_words": 30}, "length"),
    (PROSE + "\n## Water\nThe kettle sings on the stove.\n\n" + WATER, {}, "boundary"),
    (PROSE + "\n\nIn this section, we will discuss the water. " + WATER, {}, "talk"),
    (PROSE + "\n\n" + WATER + " " + WATER, {}, "repeats"),
])
def test_each_filter_rejects(document, thresholds, reason):
    assert judged(PROSE + "\n\n" + WATER) == []
    assert judged(document, **thresholds) == [reason]


def test_the_language_filter_rejects_a_document_in_another_language():
    chinese = ("绿茶的叶子在春天采摘，经过仔细干燥后出售。好的水很软很新鲜，"
               "遇到叶子时不要太烫。\n\n"
               "把水慢慢倒在叶子上，等两分钟再喝第一杯。第二次冲泡的味道比第一次更甜。")
    assert judged(chinese, min_words=10) == ["language"]
    assert judged(chinese, min_words=10, same_language=False) == []


def test_near_duplicate_instructions_are_dropped_the_first_kept():
    items = [BenchItem("a", "Write a long story about a lighthouse keeper and his dog.", "", 9),
             BenchItem("b", "Write a long story about a lighthouse keeper and his cat.", "", 9),
             BenchItem("c", "Write a long story about a baker in Lisbon.", "", 9),
             BenchItem("d", "WRITE a long story about a baker in Lisbon", "", 9)]
    found = duplicate_instructions(items, near=0.7)
    assert {k: v.reason for k, v in found.items()} == {"b": "near-duplicate", "d": "duplicate"}
    assert found["b"].why == "82% of its word pairs are a's"
    assert "b" not in duplicate_instructions(items, near=0.9)


def test_a_line_cut_short_is_taken_away_before_the_next(tmp_path):
    (tmp_path / REJECTED).write_text('{"id": "a", "reasons": ["length"], "why": ["x"]}\n{"id": ')
    ledger = Ledger(tmp_path)
    assert ledger.rejected == {"a"}
    ledger.keep(BenchItem("b", TEA, "", 9), "A document.")
    assert (tmp_path / REJECTED).read_text().endswith('["x"]}\n')
    assert read_examples(tmp_path)[0].document == "A document."


class RecordedSession:
    """In place of a session on a server: only where it was asked to write."""

    def __init__(self, settings: JobSettings, server: Server | None = None) -> None:
        self.settings, self.server = settings, server

    def with_settings(self, settings: JobSettings) -> RecordedSession:
        return RecordedSession(settings, self.server)


def test_each_job_goes_to_the_least_loaded_server_on_a_free_slot(monkeypatch):
    monkeypatch.setattr(batch, "Session", RecordedSession)
    servers = [Server("http://127.0.0.1:1/v1"), Server("http://127.0.0.1:2/v1")]
    pool = batch.SessionPool(servers)
    settings = JobSettings(prompt="p", words=100, backend="openai", base_url=servers[0].base_url)

    def place(session) -> tuple[str, int | None]:
        assert session.settings.base_url == session.server.base_url
        return session.server.base_url[-4], session.server.slot

    with ExitStack() as jobs:
        first, second, third = (place(jobs.enter_context(pool.session(settings)))
                                for _ in range(3))
        assert [first, second, third] == [("1", 0), ("2", 0), ("1", 1)]
        with pool.session(settings) as fourth:
            assert place(fourth) == ("2", 1)
    with pool.session(settings) as after:  # all ended: the first server's first slot again
        assert place(after) == ("1", 0)


def test_every_base_url_given_is_a_server():
    given = ServerOptions(backend="openai", base_url="http://127.0.0.1:1/v1",
                          more_urls=("http://127.0.0.1:2/v1",), timeout=5.0)
    assert [(s.base_url, s.timeout) for s in given.servers()] == [
        ("http://127.0.0.1:1/v1", 5.0), ("http://127.0.0.1:2/v1", 5.0)]
    assert ServerOptions().servers() == []


@pytest.mark.parametrize("args,problem", [
    (["build", "{tmp}/none.jsonl", "-o", "{tmp}/set"], "none.jsonl: cannot read the prompts"),
    (["build", "{tmp}/bad.jsonl", "-o", "{tmp}/set"], "bad.jsonl:2: not a prompt line"),
    (["build", "{tmp}/p.jsonl", "-o", "{tmp}/set", "--max-talk", "2"],
     "--max-talk 2.0: a share, from 0 to 1"),
    (["build", "{tmp}/p.jsonl", "-o", "{tmp}/set", "--min-words", "500", "--max-words", "100"],
     "--min-words 500 and --max-words 100: need 0 <= min <= max"),
    (["build", "{tmp}/p.jsonl", "-o", "{tmp}/set", "--near-duplicate", "0"],
     "--near-duplicate 0.0: a share"),
    (["build", "{tmp}/p.jsonl", "-o", "{tmp}/set", "--concurrency", "2"],
     "--concurrency 2 needs --backend openai"),
    (["build", "{tmp}/p.jsonl", "-o", "{tmp}/set", "--base-url", "http://127.0.0.1:1/v1"],
     "--base-url and --server-model need --backend openai"),
    (["stats", "{tmp}/nowhere"], "nowhere: not a dataset folder"),
    (["stats", "{tmp}/broken"], "broken/data.jsonl:1: not a JSON line"),
    (["export", "{tmp}/broken", "-o", "{tmp}/out.jsonl"], "broken/data.jsonl:1: not a JSON line"),
    (["export", "{tmp}/wrong", "-o", "{tmp}/out.jsonl"],
     'wrong/data.jsonl:1: not {"messages": [user, assistant]}'),
])
def test_bad_input_is_one_line_and_nothing_written(fake_model, tmp_path, args, problem):
    write_prompts(tmp_path, PROMPTS[:1]).rename(tmp_path / "p.jsonl")
    (tmp_path / "bad.jsonl").write_text(json.dumps(PROMPTS[0]) + "\n{not json\n")
    for name, line in (("broken", "{oops\n"), ("wrong", '{"messages": [{"role": "user"}]}\n')):
        (tmp_path / name).mkdir()
        (tmp_path / name / DATA).write_text(line)
    proc = invoke("dataset", *(a.replace("{tmp}", str(tmp_path)) for a in args))
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and problem in proc.stderr, proc.stderr
    assert not (tmp_path / "set").exists() and not (tmp_path / "out.jsonl").exists()
    assert not fake_model.requests
