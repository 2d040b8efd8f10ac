"""ZeroMQ ingest throughput and watch latency: ``python benchmarks/ingest.py --help``.

A thin script over ``livecell.bench.ingest`` (also ``livecell bench ingest``).
"""

import sys

from livecell.bench.ingest import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
