"""``livecell bench triggers`` runs end to end (a short run) and prints its table."""

from __future__ import annotations

import subprocess
import sys


def test_bench_triggers_prints_the_three_variants() -> None:
    done = subprocess.run(
        [
            *(sys.executable, "-m", "livecell", "bench", "triggers", "--mode", "none"),
            *("--frames", "3", "--rounds", "1", "--interval-s", "0.05", "--size", "64"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout[done.stdout.index("trigger cost") :].splitlines()
    rows = {line.split("  ")[0]: line.split() for line in table[3:6]}
    assert set(rows) == {"no actions", "dead peers", "hanging peers"}
    assert rows["no actions"][5:7] == ["1.000", "1.000"]  # p50 x, p99 x of the baseline
    assert float(rows["dead peers"][7]) > 0  # cpu ms per frame
    assert table[-1].startswith("target: p99 within 10 % of no actions")
