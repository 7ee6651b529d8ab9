"""A stacked daily spend chart as server-side SVG: no script, no internet, readable axes in USD.

Everything the template prints is computed here, as text: coordinates, ISO days, titles. The bars (hundreds of
them over a quarter) are written as one escaped SVG fragment, so the template does no per-bar work."""

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_CEILING, Decimal

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from pricing.calculator import format_money
from pricing.money import usd

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f", "#bab0ac")
WIDTH, HEIGHT = 960, 360
LEFT, RIGHT, TOP, BOTTOM = 90, 20, 20, 70
LEGEND_MIN_WIDTH, LEGEND_ROW, CHAR_WIDTH = 90, 20, 7  # px per legend entry at least, per row, per character
MIN_HEIGHT = 0.001  # a bar for a tiny amount is still drawn (the layout rounds to thousandths of a pixel)
BAR = (
    '<a href="{}"><rect class="bar" x="{}" y="{}" width="{}" height="{}" fill="{}" data-day="{}" data-series="{}"'
    ' data-value="{}"><title>{}</title></rect></a>\n'
)


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
    position: str


@dataclass(frozen=True, slots=True)
class LegendEntry:
    name: str
    label: str  # the name, shortened to fit its slot
    color: str
    x: str
    y: str


@dataclass(frozen=True, slots=True)
class StackedChart:
    width: int
    height: int
    svg_height: int  # the plot, the x axis and the legend's rows
    plot_left: int
    plot_right: int
    plot_top: int
    plot_bottom: int
    plot_center: int
    segments: list[Segment]
    bars: SafeString
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    legend: list[LegendEntry]
    total: Decimal


def _px(value: float) -> str:
    """A coordinate for SVG: thousandths of a pixel, plain digits whatever the locale."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


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


def _axis_top(peak: Decimal, step: Decimal) -> Decimal:
    """The first multiple of ``step`` at or above ``peak`` (one step for an empty chart)."""
    return step * max(1, (peak / step).to_integral_value(rounding=ROUND_CEILING))


def _shorten(name: str, characters: int) -> str:
    return name if len(name) <= characters else name[: max(characters - 1, 1)] + "…"


def _legend(series: list[str], colors: dict[str, str], plot_width: int) -> tuple[list[LegendEntry], int]:
    """Legend entries spread over the plot's width, wrapping into rows when there are too many; and the row count."""
    columns = max(1, min(len(series), plot_width // LEGEND_MIN_WIDTH))
    slot = plot_width / columns
    characters = max(int((slot - 24) // CHAR_WIDTH), 3)
    entries = [
        LegendEntry(name, _shorten(name, characters), colors[name], _px(LEFT + (index % columns) * slot),
                    str(HEIGHT + 22 + (index // columns) * LEGEND_ROW))
        for index, name in enumerate(series)
    ]  # fmt: skip
    return entries, -(-len(series) // columns)


def stacked_chart(
    days: list[date], series: list[str], values: dict[tuple[date, str], Decimal], url_for
) -> StackedChart:
    """``values[(day, series)]`` stacked per day in ``series`` order; ``url_for(day, series)`` links a segment."""
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    day_totals = [sum((values.get((day, name), Decimal(0)) for name in series), Decimal(0)) for day in days]
    peak = max(day_totals, default=Decimal(0))
    step = _nice_step(peak)
    top = _axis_top(peak, step)
    slot = plot_width / max(len(days), 1)
    bar = max(slot * 0.8, 1.0)
    scale = plot_height / float(top)
    colors = {name: PALETTE[index % len(PALETTE)] for index, name in enumerate(series)}
    segments, bars = [], []
    bottom = TOP + plot_height
    bar_width = _px(bar)
    for index, day in enumerate(days):
        base = 0.0
        x = LEFT + index * slot + (slot - bar) / 2
        iso = day.isoformat()
        for name in series:
            value = values.get((day, name), Decimal(0))
            if not value:
                continue
            height = float(value) * scale
            height = max(height, MIN_HEIGHT) if height > 0 else height
            segment = Segment(
                name, day, value, x, bottom - base - height, bar, height, colors[name], url_for(day, name)
            )
            segments.append(segment)
            bars.append(
                format_html(BAR, segment.url, _px(x), _px(segment.y), bar_width, _px(height), segment.color, iso, name,
                            format_money(value), f"{iso} {name}: {usd(value)}")
            )  # fmt: skip
            base += height
    y_ticks = [Tick(usd(step * n), _px(bottom - float(step * n) * scale)) for n in range(int(top / step) + 1)]
    every = max(1, len(days) // 12)
    x_ticks = [Tick(day.strftime("%b %d"), _px(LEFT + index * slot + slot / 2)) for index, day in enumerate(days)]
    legend, rows = _legend(series, colors, plot_width)
    return StackedChart(
        WIDTH, HEIGHT, HEIGHT + 20 + LEGEND_ROW * max(rows, 1), LEFT, WIDTH - RIGHT, TOP, bottom,
        LEFT + plot_width // 2, segments, mark_safe("".join(bars)), y_ticks, x_ticks[::every], legend,
        sum(day_totals, Decimal(0)),
    )  # fmt: skip


BURN_WIDTH, BURN_HEIGHT, BURN_PAD = 200, 48, 4
BURN_SVG = (
    '<svg class="burn-down" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{label}">'
    "<title>{label}</title>{budget}"
    '<polyline class="spent" points="{spent}" fill="none" stroke="#4e79a7" stroke-width="2"/>'
    '<line class="forecast" x1="{fx1}" y1="{fy1}" x2="{fx2}" y2="{fy2}" stroke="#4e79a7" stroke-dasharray="4 3"/></svg>'
)
BUDGET_LINE = '<line class="budget" x1="0" x2="{w}" y1="{y}" y2="{y}" stroke="#e15759" stroke-width="1"/>'


def burn_down(days_in_month: int, cumulative: list[Decimal], forecast: Decimal, budget: Decimal | None) -> SafeString:
    """A month's spend so far as a rising line (one point per day), dashed on to the month-end forecast, under a red
    line at the budget: where the lines cross is when the budget runs out."""
    top = max([*cumulative, forecast, budget or Decimal(0)]) or Decimal(1)
    plot_width, plot_height = BURN_WIDTH - 2 * BURN_PAD, BURN_HEIGHT - 2 * BURN_PAD
    step = plot_width / max(days_in_month - 1, 1)

    def y(value: Decimal) -> str:
        return _px(BURN_PAD + plot_height - float(value / top) * plot_height)

    points = " ".join(f"{_px(BURN_PAD + index * step)},{y(value)}" for index, value in enumerate(cumulative))
    last_x = _px(BURN_PAD + (len(cumulative) - 1) * step)
    label = f"Spent {usd(cumulative[-1] if cumulative else Decimal(0))} so far, {usd(forecast)} forecast" + (
        f", budget {usd(budget)}" if budget is not None else ", no budget"
    )
    budget_line = format_html(BUDGET_LINE, w=BURN_WIDTH, y=y(budget)) if budget is not None else ""
    return format_html(
        BURN_SVG, w=BURN_WIDTH, h=BURN_HEIGHT, label=label, budget=budget_line, spent=points, fx1=last_x,
        fy1=y(cumulative[-1] if cumulative else Decimal(0)), fx2=_px(BURN_PAD + plot_width), fy2=y(forecast),
    )  # fmt: skip
