"""``python -m lwlocal`` runs the command line."""

from lwlocal.cli import main

main()
