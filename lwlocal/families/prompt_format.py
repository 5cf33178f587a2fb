"""Chat prompt formats as plain strings, so a conversation can be built by appending tokens."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PromptFormat:
    """How one conversation is laid out in text.

    A conversation is ``start`` + for each turn ``user.format(content=...)`` + the assistant's
    reply + ``end_of_turn``. Building it by appending keeps every earlier token unchanged, which
    is what lets the engine reuse its KV cache from turn to turn.
    """

    name: str
    start: str
    user: str
    end_of_turn: str
    system: str = ""
    stops: tuple[str, ...] = ()  # strings that end a reply, for tools that stop on text

    def first_turn(self, content: str, system: str | None = None) -> str:
        """Text of the conversation's opening user turn, ready for the reply."""
        sys_text = self.system.format(content=system) if system and self.system else ""
        return self.start + sys_text + self.user.format(content=content)

    def next_turn(self, content: str) -> str:
        """Text that closes the previous reply and opens the next user turn."""
        return self.end_of_turn + self.user.format(content=content)


FORMATS: dict[str, PromptFormat] = {
    "chatml": PromptFormat(
        name="chatml",
        start="",
        system="<|im_start|>system\n{content}<|im_end|>\n",
        user="<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n",
        end_of_turn="<|im_end|>\n",
        stops=("<|im_end|>",),
    ),
    # LongWriter-llama3.1-8b was trained on this Llama-2 style wrapper (its README's example).
    "inst": PromptFormat(name="inst", start="", user="[INST]{content}[/INST]", end_of_turn=""),
    "llama3": PromptFormat(
        name="llama3",
        start="",
        system="<|start_header_id|>system<|end_header_id|>\n\n{content}<|eot_id|>",
        user=(
            "<|start_header_id|>user<|end_header_id|>\n\n{content}<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n"
        ),
        end_of_turn="<|eot_id|>",
        stops=("<|eot_id|>",),
    ),
    # GLM-4 as its tokenizer's build_chat_input lays it out: the reply (which begins with a
    # newline) follows "<|assistant|>"; the model ends it with "<|user|>", which opens the next.
    "glm4": PromptFormat(
        name="glm4",
        start="[gMASK]<sop>",
        system="<|system|>\n{content}",
        user="<|user|>\n{content}<|assistant|>",
        end_of_turn="",
        stops=("<|user|>", "<|observation|>"),
    ),
}

# Markers that identify a format inside a GGUF's `tokenizer.chat_template`, most specific first.
_TEMPLATE_MARKERS = (
    ("[gMASK]", "glm4"),
    ("<|im_start|>", "chatml"),
    ("<|start_header_id|>", "llama3"),
    ("[INST]", "inst"),
)


def format_from_template(template: str | None) -> PromptFormat:
    """The prompt format a GGUF's Jinja chat template describes (ChatML when it names none)."""
    for marker, name in _TEMPLATE_MARKERS:
        if template and marker in template:
            return FORMATS[name]
    return FORMATS["chatml"]
