"""Server-side SVG charts (caisse.console.charts): well-formed, escaped, accessible, and the table
view holds the same numbers as the drawing."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from caisse.console.charts import Chart, Series, axis_ticks
from caisse.money import euros

NS = {"svg": "http://www.w3.org/2000/svg"}
PLOT = "svg:g[@class='chart-plot']"
MONTHS = ["2026-01", "2026-02", "2026-03"]


def _chart(**overrides: object) -> Chart:
    fields: dict[str, object] = {
        "chart_id": "depenses", "title": "Dépenses par type", "description": "Dépenses mensuelles en euros",
        "categories": MONTHS, "series": [Series("Producteurs", [10_000, 0, 25_050]), Series("Épiceries", [5_000, 7_500, 0])],
        "value_format": euros,
    }
    return Chart(**{**fields, **overrides})  # type: ignore[arg-type]


def _parse(markup: str) -> ET.Element:
    return ET.fromstring(markup)


def _bar_heights(svg: ET.Element) -> dict[str, float]:
    return {rect.find("svg:title", NS).text: float(rect.get("height", "0"))  # type: ignore[union-attr]
            for rect in svg.iterfind(PLOT + "/svg:rect", NS)}


def test_bars_are_proportional_to_the_values_and_each_names_its_value() -> None:
    svg = _parse(_chart().bars())
    heights = _bar_heights(svg)
    assert len(heights) == 6
    producers_march, producers_january = heights["Producteurs, 2026-03 : 250,50"], heights["Producteurs, 2026-01 : 100,00"]
    assert producers_march / producers_january == pytest.approx(2.505, rel=0.01)
    assert heights["Épiceries, 2026-02 : 75,00"] / producers_january == pytest.approx(0.75, rel=0.01)
    assert heights["Producteurs, 2026-02 : 0,00"] <= 0.5  # a zero is a hairline, not a bar


def test_the_svg_is_labelled_for_screen_readers() -> None:
    svg = _parse(_chart().bars())
    assert svg.get("role") == "img"
    assert svg.get("aria-labelledby") == "depenses-title depenses-desc"
    assert svg.find("svg:title", NS).text == "Dépenses par type"  # type: ignore[union-attr]
    assert svg.find("svg:desc", NS).text == "Dépenses mensuelles en euros"  # type: ignore[union-attr]
    texts = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")]
    assert {"2026-01", "Producteurs", "Épiceries"} <= set(texts)


def test_labels_are_escaped_not_injected() -> None:
    hostile = '<script>alert("x")</script> & "Cie"'
    markup = _chart(title=hostile, series=[Series(hostile, [1, 2, 3])]).bars()
    assert "<script>" not in markup
    svg = _parse(markup)
    assert svg.find("svg:title", NS).text == hostile  # type: ignore[union-attr]
    assert svg.find(".//svg:script", NS) is None


def test_lines_put_one_point_per_month_higher_for_larger_values() -> None:
    svg = _parse(_chart(series=[Series("Part des producteurs", [2_000, 5_000, 10_000])]).lines())
    points = svg.findall(PLOT + "/svg:circle", NS)
    assert len(points) == 3
    ys = [float(p.get("cy", "0")) for p in points]
    assert ys[0] > ys[1] > ys[2]  # SVG y grows downwards
    polyline = svg.find(PLOT + "/svg:polyline", NS)
    assert polyline is not None and len(polyline.get("points", "").split()) == 3


def test_a_missing_value_is_no_bar_a_gap_in_the_line_and_a_dash_in_the_table() -> None:
    chart = _chart(categories=["2026-01", "2026-02", "2026-03", "2026-04"],
                   series=[Series("Part des producteurs", [2_000, None, 4_000, 5_000])])
    assert len(_parse(chart.bars()).findall(PLOT + "/svg:rect", NS)) == 3
    lines = _parse(chart.lines())
    assert [len(p.get("points", "").split()) for p in lines.findall(PLOT + "/svg:polyline", NS)] == [1, 2]
    assert len(lines.findall(PLOT + "/svg:circle", NS)) == 3
    assert [row[1] for row in chart.table()[1]] == ["20,00", "—", "40,00", "50,00"]


def test_the_table_view_has_the_same_numbers() -> None:
    header, rows = _chart().table()
    assert header == ["Mois", "Producteurs", "Épiceries"]
    assert rows == [["2026-01", "100,00", "50,00"], ["2026-02", "0,00", "75,00"], ["2026-03", "250,50", "0,00"]]


def test_negative_values_go_below_the_zero_line() -> None:
    svg = _parse(_chart(series=[Series("Solde", [-5_000, 10_000, 0])]).bars())
    zero = next(float(line.get("y1", "0")) for line in svg.iterfind("svg:g/svg:line", NS) if line.get("stroke") == "#555")
    bars = svg.findall(PLOT + "/svg:rect", NS)
    negative, positive = bars[0], bars[1]
    assert float(negative.get("y", "0")) == pytest.approx(zero)
    assert float(positive.get("y", "0")) + float(positive.get("height", "0")) == pytest.approx(zero)


def test_a_year_of_months_labels_every_other_month_so_labels_never_overlap() -> None:
    months = [f"2026-{m:02d}" for m in range(1, 13)]
    svg = _parse(_chart(categories=months, series=[Series("Cotisations", list(range(12)))]).bars())
    labels = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text") if t.text in months]
    assert labels == months[::2]
    assert len(svg.findall(PLOT + "/svg:rect", NS)) == 12  # every month still drawn, named in its tooltip


def test_a_long_legend_wraps_and_the_drawing_grows_to_hold_it() -> None:
    many = [Series(f"Type de commerce numéro {i}", [i, i, i]) for i in range(8)]
    short = _parse(_chart().bars())
    long = _parse(_chart(series=many).bars())
    assert float(long.get("viewBox", "").split()[3]) > float(short.get("viewBox", "").split()[3])
    legend_x = [float(r.get("x", "0")) + 16 for r in long.iterfind("svg:g[@aria-hidden='true']/svg:rect", NS)]
    assert max(legend_x) < 720


@pytest.mark.parametrize(("low", "high", "expected"), [
    (0, 100, (0, 20, 40, 60, 80, 100)),
    (0, 523_400, (0, 200_000, 400_000, 600_000)),
    (-5_000, 10_000, (-5_000, 0, 5_000, 10_000)),
    (0, 0, (0, 1)),
    (0, 3, (0, 1, 2, 3)),
])
def test_axis_ticks_are_round_and_cover_the_values(low: int, high: int, expected: tuple[int, ...]) -> None:
    assert axis_ticks(low, high) == expected


def test_a_series_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="2 values for 3 categories"):
        _chart(series=[Series("Producteurs", [1, 2])])
