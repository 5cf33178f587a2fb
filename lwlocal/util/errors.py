"""The one error type the command line turns into a one-line message and a non-zero exit."""


class LwlocalError(Exception):
    """A problem with the user's input or files, stated in one line."""


class LwlocalWarning(UserWarning):
    """Something the user asked for that cannot take effect; the work goes on without it."""
