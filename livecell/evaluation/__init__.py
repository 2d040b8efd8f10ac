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
analysis would emit for a ground truth, ``command`` the CLI (``defaults``, ``errors``
and ``stats`` are small shared pieces). The rules each
metric follows are written in its module's docstring and in
``docs/evaluation.md``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from livecell.evaluation.command import add_arguments, main, run
    from livecell.evaluation.errors import InputError
    from livecell.evaluation.report import Report
    from livecell.evaluation.scoring import ScoringOptions, evaluate, score

# Loaded on first use, so that ``livecell --help`` (which imports ``command`` for its
# parser) does not pay for numpy, scipy and the scoring code.
_WHERE = {
    "InputError": "livecell.evaluation.errors",
    "Report": "livecell.evaluation.report",
    "ScoringOptions": "livecell.evaluation.scoring",
    "add_arguments": "livecell.evaluation.command",
    "evaluate": "livecell.evaluation.scoring",
    "main": "livecell.evaluation.command",
    "run": "livecell.evaluation.command",
    "score": "livecell.evaluation.scoring",
}

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


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'livecell.evaluation' has no attribute {name!r}")
