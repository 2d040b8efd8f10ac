"""``livecell bench tracking`` runs end to end and prints its table with agreeing solutions."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytest.importorskip("cvxpy")


def test_bench_tracking_prints_a_table_that_agrees_with_cvxpy() -> None:
    done = subprocess.run(
        [
            *(sys.executable, "-m", "livecell", "bench", "tracking"),
            *("--lengths", "30", "--repeats", "1"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [line.split() for line in done.stdout.splitlines() if line.strip().startswith("30 ")]
    assert [row[2] for row in rows] == ["CLARABEL", "OSQP"]
    assert all(float(row[-1]) < 1e-6 for row in rows)  # max difference to the banded solve
    assert re.search(r"slowest speed-up per call \d+x", done.stdout)


def test_the_scale_target_is_not_called_met_when_5000_wells_were_not_timed() -> None:
    done = subprocess.run(
        [
            *(sys.executable, "-m", "livecell", "bench", "tracking"),
            *("--sections", "scale", "--wells", "50", "--scale-frames", "1"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.rstrip().endswith("not measured (5000 not in --wells)")
