"""Benchmarks behind ``livecell bench``; ``benchmarks/*.py`` are thin scripts over them."""
