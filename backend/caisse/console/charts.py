"""Charts drawn on the server as SVG, so the console needs no JavaScript chart library.

A `Chart` holds integer values (cents, counts) per category (months, usually) and series; None
is a value that does not exist (a share of a month without spending): no bar, a gap in the line. It
renders grouped bars or lines with xml.etree, which escapes every label, and is accessible: the
SVG has role="img" with a <title> and <desc>, each bar or point carries its value in a <title>,
and `table()` gives the same numbers as rows for the table view shown under every chart.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from markupsafe import Markup

# Colour-blind safe (Okabe & Ito), dark enough on white for the 3:1 contrast of graphics.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#999999")
WIDTH, PLOT_BOTTOM = 720, 260  # the plot area ends at y = PLOT_BOTTOM; labels and legend below
_LEFT, _RIGHT, _TOP = 84, 16, 16  # room for the value labels on the left
_LEGEND_ROW = 20
MAX_CATEGORIES, MAX_SERIES = 60, 24


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    values: Sequence[int | None]


@dataclass(frozen=True, slots=True)
class Chart:
    chart_id: str  # unique in the page: prefixes the ids of <title> and <desc>
    title: str
    description: str
    categories: Sequence[str]
    series: Sequence[Series]
    value_format: Callable[[int], str] = str
    axis_format: Callable[[int], str] | None = None  # the value axis' labels; value_format if None
    category_header: str = "Mois"
    _ticks: tuple[int, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        if not 1 <= len(self.categories) <= MAX_CATEGORIES or len(self.series) > MAX_SERIES:
            raise ValueError(f"a chart has 1 to {MAX_CATEGORIES} categories and at most {MAX_SERIES} series")
        for series in self.series:
            if len(series.values) != len(self.categories):
                raise ValueError(f"series {series.label!r} has {len(series.values)} values for {len(self.categories)} categories")
        values = [v for series in self.series for v in series.values if v is not None]
        object.__setattr__(self, "_ticks", axis_ticks(min([0, *values]), max([0, *values])))

    def table(self) -> tuple[list[str], list[list[str]]]:
        """The same numbers as the chart: header, then one row per category."""
        header = [self.category_header, *(series.label for series in self.series)]
        rows = [[category, *(self._label(series.values[i]) for series in self.series)] for i, category in enumerate(self.categories)]
        return header, rows

    def bars(self) -> Markup:
        svg, plot = self._frame()
        band = self._plot_width / len(self.categories)
        bar = band * 0.8 / max(len(self.series), 1)
        for i, category in enumerate(self.categories):
            for s, series in enumerate(self.series):
                value = series.values[i]
                if value is None:
                    continue
                top, bottom = sorted((self._y(value), self._y(0)))
                rect = ET.SubElement(plot, "rect", x=_n(_LEFT + band * i + band * 0.1 + bar * s), y=_n(top),
                                     width=_n(bar), height=_n(max(bottom - top, 0.5)), fill=_colour(s))
                ET.SubElement(rect, "title").text = f"{series.label}, {category} : {self.value_format(value)}"
        return _markup(svg)

    def lines(self) -> Markup:
        svg, plot = self._frame()
        step = self._plot_width / len(self.categories)
        for s, series in enumerate(self.series):
            points = [(_LEFT + step * (i + 0.5), self._y(v), category, v)
                      for i, (category, v) in enumerate(zip(self.categories, series.values, strict=True)) if v is not None]
            for run in _consecutive(points, step):
                ET.SubElement(plot, "polyline", {"fill": "none", "stroke": _colour(s),
                                                 "points": " ".join(f"{_n(x)},{_n(y)}" for x, y, _, _ in run), "stroke-width": "2"})
            for x, y, category, value in points:
                dot = ET.SubElement(plot, "circle", cx=_n(x), cy=_n(y), r="3.5", fill=_colour(s))
                ET.SubElement(dot, "title").text = f"{series.label}, {category} : {self.value_format(value)}"
        return _markup(svg)

    def _label(self, value: int | None) -> str:
        return "—" if value is None else self.value_format(value)

    # Layout ------------------------------------------------------------------------------------

    @property
    def _plot_width(self) -> float:
        return WIDTH - _LEFT - _RIGHT

    def _y(self, value: int) -> float:
        low, high = self._ticks[0], self._ticks[-1]
        return _TOP + (high - value) * (PLOT_BOTTOM - _TOP) / (high - low)

    def _frame(self) -> tuple[ET.Element, ET.Element]:
        """The <svg> with title, description, grid, axis labels and legend; and the plot group."""
        legend = self._legend_positions()
        height = PLOT_BOTTOM + 30 + _LEGEND_ROW * (legend[-1][1] + 1 if legend else 0)
        svg = ET.Element("svg", {"xmlns": "http://www.w3.org/2000/svg", "viewBox": f"0 0 {WIDTH} {height}", "role": "img",
                                 "width": "100%", "class": "chart", "aria-labelledby": f"{self.chart_id}-title {self.chart_id}-desc"})
        ET.SubElement(svg, "title", id=f"{self.chart_id}-title").text = self.title
        ET.SubElement(svg, "desc", id=f"{self.chart_id}-desc").text = self.description
        axes = ET.SubElement(svg, "g", {"font-size": "12", "fill": "#333", "aria-hidden": "true"})
        for tick in self._ticks:
            y = _n(self._y(tick))
            ET.SubElement(axes, "line", x1=str(_LEFT), x2=str(WIDTH - _RIGHT), y1=y, y2=y, stroke="#ccc" if tick else "#555")
            ET.SubElement(axes, "text", {"x": str(_LEFT - 6), "y": y, "dy": "4", "text-anchor": "end"}).text = (
                (self.axis_format or self.value_format)(tick))
        band = self._plot_width / len(self.categories)
        every = math.ceil(len(self.categories) / 8)  # at most 8 labels: 12 of "2026-01" overlap at this width
        for i, category in enumerate(self.categories):
            if i % every == 0:
                ET.SubElement(axes, "text", {"x": _n(_LEFT + band * (i + 0.5)), "y": str(PLOT_BOTTOM + 18),
                                             "text-anchor": "middle"}).text = category
        for s, (series, (x, row)) in enumerate(zip(self.series, legend, strict=True)):
            y = PLOT_BOTTOM + 32 + _LEGEND_ROW * row
            ET.SubElement(axes, "rect", x=str(x), y=str(y - 10), width="12", height="12", fill=_colour(s))
            ET.SubElement(axes, "text", x=str(x + 16), y=str(y)).text = series.label
        return svg, ET.SubElement(svg, "g", {"class": "chart-plot"})

    def _legend_positions(self) -> list[tuple[int, int]]:
        """(x, row) of each series' legend entry, wrapped to the width (about 7 px a letter)."""
        positions, x, row = [], _LEFT, 0
        for series in self.series:
            needed = 28 + 7 * len(series.label)
            if x > _LEFT and x + needed > WIDTH - _RIGHT:
                x, row = _LEFT, row + 1
            positions.append((x, row))
            x += needed
        return positions


def axis_ticks(low: int, high: int, *, count: int = 5) -> tuple[int, ...]:
    """Round ticks covering [low, high] (0 included): steps of 1, 2 or 5 times a power of ten."""
    if low == high:
        high = low + 1
    raw = (high - low) / count
    magnitude = 10 ** max(math.floor(math.log10(raw)), 0)
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    start, end = math.floor(low / step) * step, math.ceil(high / step) * step
    return tuple(range(start, end + step, step))


def _consecutive(points: list[tuple[float, float, str, int]], step: float) -> list[list[tuple[float, float, str, int]]]:
    """The points split where a category is missing, so a line never bridges a gap."""
    runs: list[list[tuple[float, float, str, int]]] = []
    for point in points:
        if runs and point[0] - runs[-1][-1][0] < step * 1.5:
            runs[-1].append(point)
        else:
            runs.append([point])
    return runs


def _colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _n(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def _markup(svg: ET.Element) -> Markup:
    return Markup(ET.tostring(svg, encoding="unicode"))  # every text and attribute escaped by ElementTree
