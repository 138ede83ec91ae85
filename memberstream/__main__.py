from memberstream.streams.cli import main

main()
