"""A stacked daily spend chart as server-side SVG: no script, no internet, readable axes in USD."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from spend.display import usd

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f", "#bab0ac")
WIDTH, HEIGHT = 960, 360
LEFT, RIGHT, TOP, BOTTOM = 90, 20, 20, 70


@dataclass(frozen=True, slots=True)
class Segment:
    series: str
    day: date
    value: Decimal
    x: float
    y: float
    width: float
    height: float
    color: str
    url: str


@dataclass(frozen=True, slots=True)
class Tick:
    label: str
    position: float


@dataclass(frozen=True, slots=True)
class StackedChart:
    width: int
    height: int
    plot_left: int
    plot_right: int
    plot_top: int
    plot_bottom: int
    segments: list[Segment]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    legend: list[tuple[str, str]]
    total: Decimal


def _nice_step(maximum: Decimal) -> Decimal:
    """A round tick step (1, 2 or 5 times a power of ten) giving about five ticks."""
    if maximum <= 0:
        return Decimal(1)
    rough = maximum / 5
    power = Decimal(10) ** rough.adjusted()
    for factor in (1, 2, 5, 10):
        if power * factor >= rough:
            return power * factor
    return power * 10


def stacked_chart(
    days: list[date], series: list[str], values: dict[tuple[date, str], Decimal], url_for
) -> StackedChart:
    """``values[(day, series)]`` stacked per day in ``series`` order; ``url_for(day, series)`` links a segment."""
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    day_totals = [sum((values.get((day, name), Decimal(0)) for name in series), Decimal(0)) for day in days]
    step = _nice_step(max(day_totals, default=Decimal(0)))
    top = step * max(1, -(-max(day_totals, default=Decimal(0)) // step))
    slot = plot_width / max(len(days), 1)
    bar = max(slot * 0.8, 1.0)
    scale = plot_height / float(top)
    colors = {name: PALETTE[index % len(PALETTE)] for index, name in enumerate(series)}
    segments = []
    for index, day in enumerate(days):
        base = 0.0
        for name in series:
            value = values.get((day, name), Decimal(0))
            if not value:
                continue
            height = float(value) * scale
            segments.append(
                Segment(name, day, value, LEFT + index * slot + (slot - bar) / 2, TOP + plot_height - base - height,
                        bar, height, colors[name], url_for(day, name))
            )  # fmt: skip
            base += height
    y_ticks = [Tick(usd(step * n), TOP + plot_height - float(step * n) * scale) for n in range(int(top / step) + 1)]
    every = max(1, len(days) // 12)
    x_ticks = [Tick(day.strftime("%b %d"), LEFT + index * slot + slot / 2) for index, day in enumerate(days)][::every]
    return StackedChart(
        WIDTH, HEIGHT, LEFT, WIDTH - RIGHT, TOP, TOP + plot_height, segments, y_ticks, x_ticks,
        [(name, colors[name]) for name in series], sum(day_totals, Decimal(0)),
    )  # fmt: skip
