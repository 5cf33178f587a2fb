"""One training example in LongWriter-6k's layout, ``{"messages": [user, assistant]}``, and the
other layouts fine-tuning tools read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Example:
    """An instruction and the document written for it."""

    instruction: str
    document: str

    def as_messages(self) -> dict[str, Any]:
        """LongWriter-6k's layout (and the chat ``messages`` that TRL and LLaMA-Factory read)."""
        return {"messages": [{"role": "user", "content": self.instruction},
                             {"role": "assistant", "content": self.document}]}

    def as_sharegpt(self) -> dict[str, Any]:
        """ShareGPT's ``conversations`` (human, gpt)."""
        return {"conversations": [{"from": "human", "value": self.instruction},
                                  {"from": "gpt", "value": self.document}]}

    def as_alpaca(self) -> dict[str, Any]:
        """Alpaca's instruction, input (empty) and output."""
        return {"instruction": self.instruction, "input": "", "output": self.document}

    @classmethod
    def from_messages(cls, data: Any) -> Example:
        """The example of a record in LongWriter-6k's layout; ValueError for anything else."""
        messages = data.get("messages") if isinstance(data, dict) else None
        if (not isinstance(messages, list) or len(messages) != 2
                or [m.get("role") if isinstance(m, dict) else None for m in messages]
                != ["user", "assistant"]
                or not all(isinstance(m.get("content"), str) for m in messages)):
            raise ValueError('not {"messages": [user, assistant]} with text contents')
        return cls(messages[0]["content"], messages[1]["content"])


LAYOUTS = {"messages": Example.as_messages, "sharegpt": Example.as_sharegpt,
           "alpaca": Example.as_alpaca}
