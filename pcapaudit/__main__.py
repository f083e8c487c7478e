"""``python -m pcapaudit`` entry point."""

from pcapaudit.cli import run

run()
