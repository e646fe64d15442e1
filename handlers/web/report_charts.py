"""The report page's charts as geometry: horizontal bars, one row per label, a bar per series.

The page draws them as inline SVG (``templates/reports.html``): no chart library,
no script.  Horizontal, because labels (a customer's name, a week) read on a
phone 390 px wide where a row of upright bars would need its labels turned on
their side.  Pure: the page hands over the figures, this says where each bar
goes; a figure that is not measured (``None``) gets no bar, never a zero one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 420  # the viewBox's width: drawn at that size, narrower on a phone (a 390 px screen: 0.8)
LABEL_WIDTH = 140  # the labels' column on the left
VALUE_WIDTH = 64  # the values' column on the right of the longest bar
BAR_HEIGHT = 16
BAR_GAP = 3
ROW_GAP = 10
TOP = 8
#: one colour per series, each at least 3:1 against white (WCAG non-text contrast)
COLOURS = ("#1f5fa8", "#b3261e", "#2e7d32", "#7b4d00")


@dataclass(frozen=True, slots=True)
class Bar:
    series: int
    value: float | None
    x: float
    y: float
    width: float
    colour: str

    @property
    def text_y(self) -> float:
        return self.y + BAR_HEIGHT * 0.75

    @property
    def end(self) -> float:
        """Where the value's text goes: after the bar."""
        return self.x + self.width + 4


@dataclass(frozen=True, slots=True)
class Row:
    label: str
    y: float
    bars: tuple[Bar, ...]

    @property
    def label_y(self) -> float:
        return self.y + (len(self.bars) * (BAR_HEIGHT + BAR_GAP) - BAR_GAP) / 2 + 4


@dataclass(frozen=True, slots=True)
class Chart:
    rows: tuple[Row, ...]
    series: tuple[str, ...]
    maximum: float
    width: int
    height: float
    bar_height: int = BAR_HEIGHT

    @property
    def label_end(self) -> int:
        """Where the labels end (they are right-aligned against the bars)."""
        return LABEL_WIDTH - 6

    @property
    def colours(self) -> tuple[str, ...]:
        return tuple(COLOURS[i % len(COLOURS)] for i in range(len(self.series)))


def bar_chart(
    rows: Sequence[tuple[str, Sequence[float | None]]],
    series: Sequence[str],
    *,
    maximum: float | None = None,
) -> Chart:
    """Rows of ``(label, values)``, a value per series; bars scaled to ``maximum`` (default: the largest).

    A percentage chart passes ``maximum=100`` so that 50 % is half a bar whatever the others.
    """
    known = [v for _, values in rows for v in values if v is not None]
    top = maximum if maximum is not None else max(known + [0.0])
    top = top if top > 0 else 1.0
    span = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    drawn = []
    y = float(TOP)
    for label, values in rows:
        bars = []
        for i, value in enumerate(values):
            share = 0.0 if value is None else max(0.0, min(value / top, 1.0))
            bars.append(
                Bar(
                    series=i,
                    value=value,
                    x=float(LABEL_WIDTH),
                    y=y + i * (BAR_HEIGHT + BAR_GAP),
                    width=round(share * span, 1),
                    colour=COLOURS[i % len(COLOURS)],
                )
            )
        drawn.append(Row(label=label, y=y, bars=tuple(bars)))
        y += len(values) * (BAR_HEIGHT + BAR_GAP) - BAR_GAP + ROW_GAP
    return Chart(
        rows=tuple(drawn), series=tuple(series), maximum=top, width=WIDTH, height=max(y - ROW_GAP + TOP, 40.0)
    )
