"""`python -m advlab` runs the `advlab` command."""

from advlab.cli import main

main()
