"""``python -m memberstream``: the command line (see :mod:`memberstream.cli.main`)."""

from memberstream.cli.main import main

if __name__ == "__main__":
    main()
