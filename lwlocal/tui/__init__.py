"""``lwlocal tui``: a Textual app over the same functions as the command line."""
