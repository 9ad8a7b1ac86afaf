"""``python -m launcher`` is the ``launch`` command."""

from launcher.cli import main

main()
