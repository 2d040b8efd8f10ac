"""deploy/grafana/livecell.json: importable into Grafana, and every query names a real metric.

The exported metric names are not written down here: they are read from what a real
``livecell.metrics.Metrics`` serves (``prometheus_client.generate_latest`` on its registry,
parsed back), so a panel that names a metric livecell does not export fails this test.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from livecell.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "livecell.json"

# SPEC section 6, as exported (histograms by their family name).
SPEC_METRICS = (
    "livecell_frames_total",
    "livecell_frames_rejected_total",
    "livecell_events_total",
    "livecell_frame_latency_seconds",
    "livecell_stage_seconds",
    "livecell_queue_depth",
    "livecell_engine_items_total",
)
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

# Labels Prometheus adds to every scraped series.
_TARGET_LABELS = frozenset({"job", "instance"})

# Grafana's own variables that may appear in a query.
_GRAFANA_BUILTINS = frozenset(
    {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s", "__range_ms"}
)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


PROMQL_FUNCTIONS = _words(
    """abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil
    changes clamp clamp_max clamp_min cos cosh count_over_time day_of_month day_of_week
    day_of_year days_in_month deg delta deriv exp floor histogram_avg histogram_count
    histogram_fraction histogram_quantile histogram_stddev histogram_stdvar histogram_sum
    holt_winters hour idelta increase irate label_join label_replace last_over_time ln log10
    log2 mad_over_time max_over_time min_over_time minute month pi predict_linear
    present_over_time quantile_over_time rad rate resets round scalar sgn sin sinh sort
    sort_by_label sort_by_label_desc sort_desc sqrt stddev_over_time stdvar_over_time
    sum_over_time tan tanh time timestamp vector year"""
)
PROMQL_AGGREGATIONS = _words(
    """sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk
    limit_ratio"""
)
PROMQL_KEYWORDS = _words(
    "by without on ignoring group_left group_right bool and or unless offset atan2 inf nan"
)

_STRING = re.compile(r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`""")
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
_MATCHERS = re.compile(r"\{([^{}]*)\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
_MODIFIER = re.compile(r"\boffset\s+-?[\w.]+|@\s*(?:start\(\)|end\(\)|[\d.]+)")
_IDENTIFIER = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?")
_MATCHER_LABEL = re.compile(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(.*),)?\s*(\w+)\s*\)\s*$", re.DOTALL)


class PromQLError(ValueError):
    """A query the extractor does not understand (an unknown function, say)."""


def parse_promql(expr: str) -> tuple[set[str], set[str]]:
    """``(metric names, label names)`` a PromQL expression refers to.

    Strings, Grafana variables, ranges, offsets and numbers are not names; an identifier
    followed by ``(`` must be a known function or aggregation; label names come from
    ``{...}`` matchers and ``by``/``without``/``on``/``ignoring``/``group_*`` clauses.
    """
    text = _STRING.sub('""', expr)
    text = _VARIABLE.sub(" ", text)
    labels: set[str] = set()
    for match in _MATCHERS.finditer(text):
        labels.update(_MATCHER_LABEL.findall(match.group(1)))
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    for match in _GROUPING.finditer(text):
        labels.update(name.strip() for name in match.group(1).split(",") if name.strip())
    text = _GROUPING.sub(" ", text)
    text = _MODIFIER.sub(" ", text)
    metrics: set[str] = set()
    for match in _IDENTIFIER.finditer(text):
        name, call = match.group(1), match.group(2)
        if call:
            if name not in PROMQL_FUNCTIONS | PROMQL_AGGREGATIONS:
                raise PromQLError(f"unknown PromQL function {name!r} in {expr!r}")
        elif name.lower() not in PROMQL_KEYWORDS | PROMQL_AGGREGATIONS:
            metrics.add(name)
    return metrics, labels


def unknown_names(expr: str, exported: dict[str, frozenset[str]]) -> list[str]:
    """What in ``expr`` livecell does not export: metric names, and labels no named metric has."""
    metrics, labels = parse_promql(expr)
    problems = [f"metric {m!r}" for m in sorted(metrics) if m not in exported]
    known_labels = set(_TARGET_LABELS)
    for metric in metrics & exported.keys():
        known_labels |= exported[metric]
    problems += [f"label {label!r}" for label in sorted(labels - known_labels)]
    return problems


def exported_metrics() -> dict[str, frozenset[str]]:
    """Sample name -> its label names, as a real ``Metrics()`` serves them once used."""
    metrics = Metrics()
    metrics.frames.labels("watch").inc()
    metrics.rejected.labels("unreadable").inc()
    metrics.events.labels("death").inc()
    metrics.frame_latency.observe(0.3)
    metrics.observe_stage("segment", 0.01)
    metrics.queue_depth.set(2)
    metrics.count_engine_items("unet", "onnxruntime", 4)
    metrics.stage_errors.labels("nanowell").inc()
    metrics.count_action("trigger-0", "sent")
    text = generate_latest(metrics.registry).decode()
    exported: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        assert family.samples, f"{family.name} has no samples: exercise it in exported_metrics()"
        for sample in family.samples:
            exported.setdefault(sample.name, set()).update(sample.labels)
    return {name: frozenset(labels) for name, labels in exported.items()}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def exported() -> dict[str, frozenset[str]]:
    return exported_metrics()


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' collapsed children included."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """``(where, PromQL)`` for every panel target and every query variable."""
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} target {target.get('refId')}", target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]
        text = query["query"] if isinstance(query, dict) else query
        label_values = _LABEL_VALUES.match(text)
        if label_values:  # label_values(selector, label): only the selector is PromQL
            text = label_values.group(1) or ""
        if text.strip():
            yield f"variable {variable['name']!r}", text


def test_extractor_finds_metrics_and_skips_the_rest() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le, stage) (rate(livecell_stage_seconds_bucket"
        '{job=~"$job", instance=~"${instance}"}[5m] offset 1h))) / ignoring(stage) group_left '
        "sum(increase(livecell_frames_total[$__rate_interval])) * 60 + 1e3 and on() vector(1)"
    )
    metrics, labels = parse_promql(expr)
    assert metrics == {"livecell_stage_seconds_bucket", "livecell_frames_total"}
    assert labels == {"le", "stage", "job", "instance"}


def test_a_wrong_name_is_caught(exported: dict[str, frozenset[str]]) -> None:
    good = "sum by (source) (rate(livecell_frames_total[5m])) * 60"
    assert unknown_names(good, exported) == []
    # a metric that does not exist (singular "frame"), one without its _total suffix,
    # and a label the named metric does not have
    assert unknown_names("rate(livecell_frame_total[5m])", exported) == [
        "metric 'livecell_frame_total'"
    ]
    assert unknown_names("rate(livecell_frames[5m])", exported) == ["metric 'livecell_frames'"]
    assert unknown_names("sum by (reason) (rate(livecell_frames_total[5m]))", exported) == [
        "label 'reason'"
    ]
    with pytest.raises(PromQLError, match="hisogram_quantile"):
        parse_promql("hisogram_quantile(0.5, livecell_frame_latency_seconds_bucket)")


def test_dashboard_structure(dashboard: dict[str, Any]) -> None:
    assert dashboard["title"]
    assert isinstance(dashboard["uid"], str)
    assert 0 < len(dashboard["uid"]) <= 40
    assert re.fullmatch(r"[\w-]+", dashboard["uid"])
    assert dashboard.get("id") is None  # a fixed id would clash on import
    assert isinstance(dashboard["schemaVersion"], int)
    assert 36 <= dashboard["schemaVersion"] <= 41

    panels = list(all_panels(dashboard))
    ids = [panel["id"] for panel in panels]
    assert all(isinstance(i, int) for i in ids)
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {ids}"
    boxes: list[tuple[str, set[tuple[int, int]]]] = []
    for panel in panels:
        assert panel["type"] in {"row", "timeseries", "stat", "heatmap"}, panel["type"]
        assert panel["title"]
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in ("x", "y", "w", "h")), panel["title"]
        assert min(grid["x"], grid["y"]) >= 0, panel["title"]
        assert min(grid["w"], grid["h"]) > 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        for title, other in boxes:
            assert not cells & other, f"{panel['title']!r} overlaps {title!r}"
        boxes.append((panel["title"], cells))
        if panel["type"] == "row":
            assert "targets" not in panel
            continue
        targets = panel["targets"]
        assert targets, panel["title"]
        ref_ids = [target["refId"] for target in targets]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in targets:
            assert isinstance(target["expr"], str), panel["title"]
            assert target["expr"].strip(), panel["title"]


def _datasource_names(dashboard: dict[str, Any]) -> tuple[set[str], set[str]]:
    """Declared Prometheus ``__inputs`` names and Prometheus datasource-variable names."""
    inputs = {
        i["name"]
        for i in dashboard.get("__inputs", [])
        if i["type"] == "datasource" and i["pluginId"] == "prometheus"
    }
    variables = {
        v["name"]
        for v in dashboard["templating"]["list"]
        if v["type"] == "datasource" and v["query"] == "prometheus"
    }
    return inputs, variables


def test_datasources_resolve(dashboard: dict[str, Any]) -> None:
    inputs, variables = _datasource_names(dashboard)
    assert inputs or variables, "no Prometheus __inputs entry and no datasource variable"
    declared = inputs | variables

    def check(ref: Any, where: str) -> None:
        uid = ref["uid"] if isinstance(ref, dict) else ref
        if isinstance(ref, dict):
            assert ref.get("type") == "prometheus", where
        match = _VARIABLE.fullmatch(uid)
        assert match, f"{where}: datasource {uid!r} is not ${{input}} or ${{variable}}"
        assert (match.group(1) or match.group(2)) in declared, f"{where}: {uid!r} undeclared"

    for panel in all_panels(dashboard):
        if panel["type"] == "row":
            continue
        check(panel["datasource"], f"panel {panel['title']!r}")
        for target in panel["targets"]:
            check(target.get("datasource", panel["datasource"]), f"panel {panel['title']!r}")
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            check(variable["datasource"], f"variable {variable['name']!r}")

    # every ${DS_...} anywhere in the file is a declared input (Grafana's import fills them)
    raw = DASHBOARD.read_text(encoding="utf-8")
    for name in re.findall(r"\$\{(DS_\w+)\}", raw):
        assert name in inputs, f"${{{name}}} is not in __inputs"


def test_query_variables_are_defined(dashboard: dict[str, Any]) -> None:
    defined = {v["name"] for v in dashboard["templating"]["list"]} | _GRAFANA_BUILTINS
    names = {v["name"] for v in dashboard["templating"]["list"]}
    assert names & {"job", "instance"}, "no job or instance variable"
    for where, expr in queries(dashboard):
        for match in _VARIABLE.finditer(expr):
            name = match.group(1) or match.group(2)
            assert name in defined, f"{where}: ${name} is not a dashboard variable"


def test_every_query_names_exported_metrics(
    dashboard: dict[str, Any], exported: dict[str, frozenset[str]]
) -> None:
    problems = []
    checked = 0
    for where, expr in queries(dashboard):
        metrics, _labels = parse_promql(expr)
        assert metrics, f"{where}: no metric in {expr!r}"
        checked += 1
        problems += [f"{where}: {p}" for p in unknown_names(expr, exported)]
    assert checked >= 10
    assert not problems, "\n".join(problems)


def test_every_spec_metric_is_on_a_panel(dashboard: dict[str, Any]) -> None:
    shown: set[str] = set()
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            shown |= parse_promql(target["expr"])[0]
    for metric in SPEC_METRICS:
        names = {metric, *(metric + suffix for suffix in _HISTOGRAM_SUFFIXES)}
        assert names & shown, f"no panel shows {metric} (SPEC section 6)"


def test_spec_metrics_are_exported(exported: dict[str, frozenset[str]]) -> None:
    # keeps SPEC_METRICS honest: each is exported under that name (histograms as _bucket)
    for metric in SPEC_METRICS:
        assert metric in exported or metric + "_bucket" in exported, metric
