"""``python -m memberstream``: the command line (see :mod:`memberstream.streams.cli`)."""

from memberstream.streams.cli import main

if __name__ == "__main__":
    main()
