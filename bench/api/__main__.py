"""Entry point: ``python -m bench.api``."""

from bench.api.run import main

if __name__ == "__main__":
    main()
