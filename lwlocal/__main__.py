"""``python -m lwlocal`` runs the command line."""

from lwlocal.cli import main

if __name__ == "__main__":  # not when a spawned process (the quantizer's) imports it
    main()
