"""``python -m factorysync.cli``: the same command line as the ``factorysync`` script."""

from factorysync.cli import main

main()
