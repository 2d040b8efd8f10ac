"""The scorer: livecell's results against the simulator's ground truth (``livecell evaluate``).

This package owns every number later claims rest on. It reads a ground-truth
folder (SPEC 5), livecell's events (SPEC 4, JSON Lines), its tracks file and
Cell Tracking Challenge result folders, and scores patch states, tracking
(MOTA/IDF1 per well, CTC TRA/DET), deaths, contacts and cell types.

Layout: ``tables`` holds the parsed inputs (frozen, columnar where large),
``loaders`` is the only module that reads files, ``patches``, ``tracking``,
``deaths``, ``contacts`` and ``cell_types`` are pure scoring functions over
those tables, ``ctc`` wraps py-ctcmetrics, ``report`` holds the frozen results
and their table and JSON forms, ``plots`` the PNGs, ``oracle`` what a perfect
analysis would emit for a ground truth, and ``command`` the CLI. The rules each
metric follows are written in its module's docstring and in
``docs/evaluation.md``.
"""

from __future__ import annotations

from livecell.evaluation.command import add_arguments, main, run
from livecell.evaluation.errors import InputError
from livecell.evaluation.report import Report
from livecell.evaluation.scoring import ScoringOptions, evaluate, score

__all__ = [
    "InputError",
    "Report",
    "ScoringOptions",
    "add_arguments",
    "evaluate",
    "main",
    "run",
    "score",
]
