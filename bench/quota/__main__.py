"""Entry point: ``python -m bench.quota``."""

from bench.quota.run import main

if __name__ == "__main__":
    main()
