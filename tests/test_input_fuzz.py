"""Mutated scenarios: `validate` answers 0 or 2 and, on 2, names the mutated key."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from clearing_sim.cli import main
from clearing_sim.scenario import format_path

BASELINE = Path(__file__).resolve().parent.parent / "scenarios" / "baseline.yaml"

# Wrong types, negative numbers, absurd sizes and impossible times.
BAD_VALUES = ["abc", -1, -0.5, 10**30, 1e308, "25:99", "99:00", None, True, [], {"x": 1}, "", 3.5, 0]


def leaves(node, path=()):
    """Every scalar leaf of a YAML tree as (path, value)."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from leaves(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from leaves(v, path + (i,))
    else:
        yield path, node


def mutate(text: str, path: tuple, value) -> str:
    yaml = YAML(typ="rt")
    tree = yaml.load(text)
    node = tree
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    buf = io.StringIO()
    yaml.dump(tree, buf)
    return buf.getvalue()


def check(tmp_path: Path, capsys, path: tuple, value) -> None:
    text = mutate(BASELINE.read_text(), path, value)
    f = tmp_path / "mutated.yaml"
    f.write_text(text)
    rc = main(["validate", str(f)])
    captured = capsys.readouterr()
    assert rc in (0, 2), captured.err
    assert "Traceback" not in captured.err
    if rc == 2:
        dotted = format_path(path)
        assert dotted in captured.err, f"mutating {dotted} to {value!r} gave:\n{captured.err}"


BASE_LEAVES = list(leaves(YAML(typ="safe").load(BASELINE.read_text())))


class TestMutatedScenarios:
    """Thirty seeded random mutations of the baseline, then many more from Hypothesis."""

    @pytest.mark.parametrize("case", range(30))
    def test_seeded_mutation(self, case: int, tmp_path: Path, capsys) -> None:
        rnd = random.Random(1000 + case)
        path, _ = rnd.choice(BASE_LEAVES)
        check(tmp_path, capsys, path, rnd.choice(BAD_VALUES))

    @given(st.sampled_from(BASE_LEAVES), st.sampled_from(BAD_VALUES))
    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    def test_any_mutation(self, tmp_path_factory, capsys, leaf, value) -> None:
        check(tmp_path_factory.mktemp("m"), capsys, leaf[0], value)
