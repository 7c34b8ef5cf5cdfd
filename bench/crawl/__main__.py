"""Entry point: ``python -m bench.crawl``."""

from bench.crawl.run import main

if __name__ == "__main__":
    main()
