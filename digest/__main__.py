"""``python -m digest``: the digest command line."""

from digest.cli import main

main()
