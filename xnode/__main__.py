"""Allow ``python -m xnode``."""

from xnode.cli import main

main()
