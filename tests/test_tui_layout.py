"""At 80x24 nothing the user needs is cut: the document follows the writing unless the reader
scrolled up, and the fields, columns, keys and figures are wide enough for the largest value
they may hold."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace

from textual.widgets import Input, Markdown

from lwlocal.tui.screens.writing import WritingScreen
from lwlocal.tui.widgets.document_view import DocumentView
from lwlocal.write.journal import Job
from lwlocal.write.settings import JobSettings
from tests.support.fake_chat import FakeChat
from tests.support.tui_pilot import (
    GIB,
    PROMPT,
    fake_app,
    outline,
    run,
    screen_text,
    section_words,
    widget_text,
)

LONG_TITLE = "Choosing, buying and keeping the leaves: sencha, gyokuro and bancha"


def last_words_shown(app, document: Markdown) -> bool:
    """Whether the last words of the document so far are on the screen."""
    end = " ".join(document.source.split()[-3:]).rstrip(".")
    return end in " ".join(screen_text(app).split())


def test_the_document_follows_the_writing_unless_the_reader_scrolled_up(tmp_path, messages):
    chat = FakeChat(paced=True)
    app = fake_app(tmp_path, chat, outline=outline(900, 3))

    async def test() -> None:
        async with app.run_test(size=(80, 24), message_hook=messages) as pilot:
            await pilot.press("f4", "ctrl+w", "f6")  # the first words come while it is hidden
            chat.release(100)
            await messages.wait(pilot, WritingScreen.Update, section_words(messages, 100))
            await pilot.press("f5")
            view = app.screen.query_one(DocumentView)
            document = app.screen.query_one(Markdown)
            for words in (150, 200):
                chat.release(50)
                await messages.wait(pilot, WritingScreen.Update, section_words(messages, words))
                for _ in range(5):  # the stream drawn
                    await pilot.pause()
                assert view.max_scroll_y > 0 and view.scroll_y == view.max_scroll_y
                assert last_words_shown(app, document)
            view.focus()
            await pilot.press("pageup")  # the reader scrolls up: the view stays there
            kept = view.scroll_y
            chat.release(50)
            await messages.wait(pilot, WritingScreen.Update, section_words(messages, 250))
            for _ in range(5):
                await pilot.pause()
            assert view.scroll_y == kept < view.max_scroll_y
            await pilot.press("end")  # back at the end: followed again
            chat.release(50)
            await messages.wait(pilot, WritingScreen.Update, section_words(messages, 300))
            for _ in range(5):
                await pilot.pause()
            assert view.scroll_y == view.max_scroll_y and last_words_shown(app, document)
            await pilot.press("p")
            await messages.wait(pilot, WritingScreen.Stopped)

    run(test)


def test_fields_columns_keys_and_figures_fit_80x24(tmp_path):
    o = outline(300, 3)
    o.sections[0].title = LONG_TITLE
    app = fake_app(tmp_path, FakeChat(n_ctx=131_072), outline=o, words=40_000)
    job = Job.create(tmp_path / "jobs", JobSettings(PROMPT, 300, model="x"),
                     name="20261128-101010-a-job-with-a-rather-long-name-for-its-id")
    created = datetime.fromtimestamp(job.meta.created).strftime("%Y-%m-%d %H:%M")

    async def test() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            words = app.screen.query_one("#words", Input)
            for value in ("100000", "1000000", "40000"):  # typed: the cursor after the last
                words.focus()
                words.clear()
                await pilot.press(*value)
                assert value in widget_text(app, "#words"), widget_text(app, "#words")
            await pilot.press("f4")
            row = next(line for line in screen_text(app).splitlines() if LONG_TITLE in line)
            assert row.split()[:2] == ["1", "100"]  # the number and the words, then the title
            await pilot.press("x")  # deleted: the most keys, undo among them
            footer = widget_text(app, "Footer")
            keys = {b.group.description if b.group else b.description
                    for _, b, enabled, _ in app.screen.active_bindings.values()
                    if b.show and enabled}
            assert keys == {"Write", "Add", "Delete", "Undo", "Move", "Redraft"}
            assert all(f" {k} " in footer for k in keys), footer
            await pilot.press("f6")
            assert created in screen_text(app)
            app.state.session = app.state.new_session(app.state.settings())
            app.state.session.memory_plan = SimpleNamespace(
                memory=SimpleNamespace(ram_bytes=123.4 * GIB))
            app.begin_task("drafting the outline", "compose")
            bar = screen_text(app).splitlines()[0]
            for figure in ("40,000 words", "agentwrite", "ctx 131,072", "RAM 123.4 GiB",
                           "● outlining"):
                assert figure in bar, bar
            app.end_task()

    run(test)
