"""The one error type the command line turns into a one-line message and a non-zero exit."""

from __future__ import annotations

import re
from collections.abc import Callable

_SETTING = re.compile(r"\{(\w+)\}")


class LwlocalError(Exception):
    """A problem with the user's input or files, stated in one line."""


def name_settings(text: str, label: Callable[[str], str]) -> str:
    """``text`` with each setting named as ``{name}`` shown as ``label(name)``."""
    return _SETTING.sub(lambda match: label(match.group(1)), text)


class SettingError(LwlocalError):
    """A setting that cannot be used, named in the library's words as ``{name}`` (``{kv_type}``,
    ``{n_ctx}``): each front end shows names its own way (the command line ``--kv-type``), and
    ``str()`` gives the bare name."""

    def shown(self, label: Callable[[str], str]) -> str:
        return name_settings(super().__str__(), label)

    def __str__(self) -> str:
        return self.shown(lambda name: name)


class LwlocalWarning(UserWarning):
    """Something the user asked for that cannot take effect; the work goes on without it."""
