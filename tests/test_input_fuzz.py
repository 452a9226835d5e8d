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


# --- corrupted clearing files ------------------------------------------------------------


@pytest.fixture(scope="module")
def clearing_file() -> bytes:
    """A real acquirer file from a small run (a few hundred records)."""
    import clearing_sim
    from clearing_sim.scenario import parse_scenario
    from tests.conftest import SMALL_YAML

    result = clearing_sim.run(parse_scenario(SMALL_YAML), mode="fast", clearing_files=True)
    name, data = next((n, d) for n, d in result.clearing_files if n.startswith("in/"))
    return data


def corruptions(data: bytes) -> list[tuple[str, bytes]]:
    """Forty damaged copies: ten truncations, ten byte flips, ten absurd lengths, ten random files."""
    rnd = random.Random(2026)
    out = []
    for k in range(10):
        out.append((f"truncated-{k}", data[: rnd.randrange(0, len(data))]))
    for k in range(10):
        b = bytearray(data)
        pos = rnd.randrange(len(b))
        b[pos] ^= 1 << rnd.randrange(8)
        out.append((f"flipped-{k}@{pos}", bytes(b)))
    # VBS records start with a 4-byte big-endian length: find record starts and make them absurd.
    starts, pos = [], 0
    while pos + 4 <= len(data) and len(starts) < 2000:
        n = int.from_bytes(data[pos:pos + 4], "big")
        if n == 0:
            break
        starts.append(pos)
        pos += 4 + n
    for k in range(10):
        b = bytearray(data)
        at = rnd.choice(starts)
        b[at:at + 4] = rnd.choice([0xFFFFFFFF, 0x7FFFFFFF, 10**9, 3, 1, 0]).to_bytes(4, "big")
        out.append((f"absurd-length-{k}@{at}", bytes(b)))
    for k in range(10):
        out.append((f"random-{k}", rnd.randbytes(rnd.randrange(0, 5000))))
    return out


def test_forty_corrupted_clearing_files(clearing_file: bytes, tmp_path: Path, capsys) -> None:
    """`inspect` answers every damaged file with exit 0 or 2, never a traceback; 2 names a reason code."""
    assert main(["inspect", str(_write(tmp_path / "good.ipm", clearing_file))]) == 0
    capsys.readouterr()
    damaged = corruptions(clearing_file)
    assert len(damaged) == 40
    rejected = 0
    for name, data in damaged:
        rc = main(["inspect", str(_write(tmp_path / f"{name}.ipm", data))])
        captured = capsys.readouterr()
        assert rc in (0, 2), (name, captured.err)
        assert "Traceback" not in captured.err + captured.out, name
        if rc == 2:
            rejected += 1
            assert "rejected, reason " in captured.err, (name, captured.err)
    # Truncations, length and random garbage can never pass; a flipped byte inside a text field may.
    assert rejected >= 30


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
