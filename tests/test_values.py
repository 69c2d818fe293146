"""Helm's merge rules, implemented in dask_platform/values.py, checked by hand and against helm itself."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from dask_platform.values import coalesce, merge_layers


def test_maps_merge_deeply():
    assert merge_layers({"a": {"b": 1, "c": 2}}, {"a": {"c": 3, "d": 4}}) == {"a": {"b": 1, "c": 3, "d": 4}}


def test_lists_replace_not_concatenate():
    assert merge_layers({"a": [1, 2]}, {"a": [3]}) == {"a": [3]}
    assert coalesce({"a": [1, 2]}, {"a": [3]}) == {"a": [3]}


def test_scalars_and_type_changes_replace():
    assert merge_layers({"a": {"b": 1}}, {"a": 5}) == {"a": 5}
    assert merge_layers({"a": 5}, {"a": {"b": 1}}) == {"a": {"b": 1}}


def test_null_deletes_a_chart_default():
    defaults = {"a": {"b": 1, "c": 2}, "d": 3}
    assert coalesce(defaults, {"a": {"b": None}}) == {"a": {"c": 2}, "d": 3}
    assert coalesce(defaults, {"d": None}) == {"a": {"b": 1, "c": 2}}


def test_null_in_a_later_layer_replaces_what_an_earlier_layer_set():
    # As in helm: the key is deleted only where the chart has a default; otherwise it stays, as null
    # (templates skip null worker groups).
    defaults = {"groups": {"default": {"replicas": 1}}}
    user = merge_layers({"groups": {"gpu": {"replicas": 2}}}, {"groups": {"gpu": None, "default": None}})
    assert coalesce(defaults, user) == {"groups": {"gpu": None}}


def test_inputs_are_not_mutated():
    a, b = {"x": {"y": [1]}}, {"x": {"z": 2}}
    merged = merge_layers(a, b)
    merged["x"]["y"].append(5)
    assert a == {"x": {"y": [1]}} and b == {"x": {"z": 2}}


DUMP_CHART = {
    "Chart.yaml": "apiVersion: v2\nname: dump\nversion: 0.1.0\n",
    "templates/cm.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dump\ndata:\n  values: {{ toJson .Values | quote }}\n"
    ),
}

CASES = [
    # (chart defaults, layer 1, layer 2)
    ({"a": {"b": 1, "c": [1, 2]}, "d": "x"}, {"a": {"c": [9]}}, {"a": {"b": 7}}),
    ({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"b": None}}, {"d": None}),
    (
        {"g": {"default": {"r": 1, "n": {"k": "v"}}}},
        {"g": {"gpu": {"r": 2}}},
        {"g": {"gpu": None, "default": {"n": None}}},
    ),
    ({"a": [{"x": 1}]}, {"a": [{"p": 2}]}, {}),
    ({"a": {"b": {"c": {"d": 1, "e": 2}}}}, {"a": {"b": {"c": {"e": 5, "f": 6}}}}, {"a": {"b": {"c": {"d": None}}}}),
]


@pytest.mark.helm
@pytest.mark.parametrize(("defaults", "first", "second"), CASES)
def test_same_result_as_helm_with_two_values_files(tmp_path: Path, helm: Path, defaults, first, second):
    """`helm template -f first -f second` over a chart with these defaults sees exactly coalesce(merge_layers())."""
    for name, text in DUMP_CHART.items():
        (tmp_path / "chart" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "chart" / name).write_text(text)
    (tmp_path / "chart/values.yaml").write_text(yaml.safe_dump(defaults))
    (tmp_path / "1.yaml").write_text(yaml.safe_dump(first))
    (tmp_path / "2.yaml").write_text(yaml.safe_dump(second))
    out = subprocess.run(
        [
            str(helm),
            "template",
            "x",
            str(tmp_path / "chart"),
            "-f",
            str(tmp_path / "1.yaml"),
            "-f",
            str(tmp_path / "2.yaml"),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    helm_values = json.loads(yaml.safe_load(out)["data"]["values"])
    ours = coalesce(defaults, merge_layers(first, second))
    assert ours == helm_values
