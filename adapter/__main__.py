"""``python -m adapter`` is the same as ``yibao-adapter``."""

from adapter.cli import main

main()
