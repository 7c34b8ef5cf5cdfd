"""Entry point: ``python -m bench.sync``."""

from bench.sync.run import main

if __name__ == "__main__":
    main()
