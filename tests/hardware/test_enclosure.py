"""The enclosure source renders headless into a closed (watertight) mesh of the expected size."""

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

SCAD = Path(__file__).resolve().parents[2] / "hardware" / "enclosure" / "enclosure.scad"
VERTEX = re.compile(r"vertex\s+(\S+)\s+(\S+)\s+(\S+)")


def render(tmp_path: Path, part: str) -> list[tuple[tuple[float, ...], ...]]:
    openscad = shutil.which("openscad")
    assert openscad, "openscad is missing: `make test` installs it (target openscad)"
    out = tmp_path / f"{part}.stl"
    subprocess.run(
        [openscad, "-o", str(out), "-D", f'part="{part}"', str(SCAD)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    text = out.read_text()
    assert text.startswith("solid")
    points = [tuple(round(float(v), 4) for v in m.groups()) for m in VERTEX.finditer(text)]
    assert len(points) % 3 == 0
    return [tuple(points[i : i + 3]) for i in range(0, len(points), 3)]


def assert_closed(triangles):
    """Every edge of a closed mesh is shared by exactly two triangles."""
    edges = Counter()
    for a, b, c in triangles:
        for e in ((a, b), (b, c), (c, a)):
            edges[frozenset(e)] += 1
    bad = [e for e, n in edges.items() if n != 2]
    assert not bad, f"{len(bad)} open or non-manifold edges"


@pytest.mark.parametrize(("part", "size"), [("base", (96, 190, 28)), ("lid", (96, 190, 2.4 + 18))])
def test_each_part_renders_to_a_closed_mesh_of_the_design_size(tmp_path, part, size):
    triangles = render(tmp_path, part)
    assert len(triangles) > 100
    assert_closed(triangles)
    points = [p for t in triangles for p in t]
    extent = tuple(max(p[i] for p in points) - min(p[i] for p in points) for i in range(3))
    assert extent == pytest.approx(size, abs=0.01)
