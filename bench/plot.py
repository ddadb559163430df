"""``--plot PATH``: a benchmark's latency distributions as a PNG.

Owns: :class:`Panel`, :func:`require` and :func:`write_ecdfs`, shared by ``transport.py``,
``network.py`` and ``bargein.py``. Each panel is one figure's empirical distribution
(ECDF: the share of samples at or below each latency) with one curve per thing compared, its
median marked by a dotted line, and n, p50 and p99 (nearest rank, as the reports print them)
in the legend. matplotlib is imported only when a plot is asked for (the ``bench`` extra:
``pip install -e '.[bench]'``), so the benchmarks run without it.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Curves in this order: this package first (blue), the other one (orange), then a third.
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")


@dataclass
class Panel:
    """One figure: a title and, per curve, its samples (ms); optionally, per curve, its
    matplotlib line style (``{"color": ..., "linestyle": "--"}``) instead of the next color."""

    title: str
    series: dict[str, list[float]] = field(default_factory=dict)
    xlabel: str = "ms"
    styles: dict[str, dict[str, Any]] = field(default_factory=dict)


def require() -> None:
    """Fail at once, with what to install, if matplotlib is missing (not after the run)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install -e '.[bench]' "
                         "(or pip install 'matplotlib>=3.8,<4')") from None


def nearest_rank(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def load(average: float | None) -> str:
    """The 1-minute load average for a plot's note."""
    return "unknown" if average is None else f"{average:.2f}"


def _ms(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.0f}"


def write_ecdfs(path: str | Path, title: str, panels: Sequence[Panel], *, note: str = "",
                columns: int | None = None, log_x: bool = False) -> Path:
    """Write ``panels`` (empty ones are left out) as a grid of ECDFs to the PNG ``path``."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    shown = [p for p in panels if any(p.series.values())]
    if not shown:
        raise ValueError("nothing to plot: no panel has samples")
    cols = columns or min(len(shown), 3)
    rows = math.ceil(len(shown) / cols)
    width, height = 4.8 * cols, 3.5 * rows
    # Text wrapped to the figure's width: about 0.09 inch a character at 12 pt, 0.055 at 7 pt.
    heading = textwrap.wrap(title, width=int(width / 0.09))
    lines = textwrap.wrap(note, width=int(width / 0.055))
    top, bottom = 0.22 * len(heading) + 0.1, 0.13 * len(lines) + 0.1 if lines else 0.0
    figure, axes = plt.subplots(rows, cols, figsize=(width, height + top + bottom),
                                squeeze=False)
    for ax, panel in zip(axes.flat, shown, strict=False):
        _panel(ax, panel, log_x)
    for ax in axes.flat[len(shown):]:
        ax.set_visible(False)
    total = height + top + bottom
    figure.suptitle("\n".join(heading), fontsize=12, y=1 - 0.05 / total, va="top")
    if lines:
        figure.text(0.5, 0.04 / total, "\n".join(lines), ha="center", va="bottom",
                    fontsize=7, color="#555555")
    figure.tight_layout(rect=(0, bottom / total, 1, 1), h_pad=1.2)  # makes room for the title
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out


def _panel(ax: Any, panel: Panel, log_x: bool) -> None:
    for (label, values), color in zip(panel.series.items(), COLORS, strict=False):
        if not values:
            continue
        style = {"color": color, "linewidth": 1.6, **panel.styles.get(label, {})}
        xs = sorted(values)
        ys = [(i + 1) / len(xs) for i in range(len(xs))]
        p50, p99 = nearest_rank(xs, 50), nearest_rank(xs, 99)
        ax.step([xs[0], *xs], [0.0, *ys], where="post", **style,
                label=f"{label}: n={len(xs)}, p50 {_ms(p50)}, p99 {_ms(p99)} ms")
        ax.axvline(p50, color=style["color"], linestyle=":", linewidth=0.9)
    ax.set_title(panel.title, fontsize=9)
    ax.set_xlabel(panel.xlabel, fontsize=8)
    ax.set_ylabel("share of samples ≤ x", fontsize=8)
    ax.set_ylim(0, 1.03)
    if log_x:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    else:
        ax.set_xlim(left=0)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6.5, loc="lower right")
