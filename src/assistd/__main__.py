"""Allow ``python -m assistd``."""

from assistd.cli import main

main()
