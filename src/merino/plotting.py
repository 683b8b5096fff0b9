"""One style for every figure (Figs. 1, 2, 3, 5, 6 and the design fit): colours per model family, legends
outside the data, point labels placed where they collide with nothing, and :func:`check_legible`, which lists
the labels and legends a reader could not read."""

from __future__ import annotations

import textwrap
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

# Okabe-Ito colours (distinguishable with colour-blindness); one per model family, the rest cycle.
FAMILY_COLOURS = {"MeRino": "#D55E00", "baselines": "#0072B2", "naive scaling": "#009E73"}
CYCLE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000"]
MARKERS = "os^vDP*X"
LABEL_SIZE = 7  # point labels (model names)
MARKER_AREA = 16  # points^2 of a plain scatter marker
STYLE = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.title_fontsize": 8,
    "legend.frameon": False,
    "figure.titlesize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": f"cycler(color={CYCLE})",
    "lines.markersize": 5,
    "savefig.dpi": 200,
    "pdf.fonttype": 42,
}
_PAD_PX = 0.5  # overlaps and overhangs smaller than this many pixels are not reported


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (figures are only written to files)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


class IllegibleFigure(UserWarning):
    """A figure was written with labels or legends a reader cannot read (see :func:`check_legible`)."""


@contextmanager
def figure(path: str | Path, nrows: int = 1, ncols: int = 1, **subplots):
    """``with figure(path, 1, 2, figsize=...) as (fig, axes):`` draws under :data:`STYLE`, then checks the
    figure (:func:`check_legible`, an :class:`IllegibleFigure` warning per problem) and writes ``path``; the
    figure is closed either way. Call :func:`layout` before :func:`place_labels`."""
    import matplotlib

    plt = pyplot()
    with matplotlib.rc_context(STYLE):
        fig, axes = plt.subplots(nrows, ncols, **subplots)
        try:
            yield fig, axes
            for problem in check_legible(fig):
                warnings.warn(f"{Path(path).name}: {problem}", IllegibleFigure, stacklevel=3)
            fig.savefig(path)
        finally:
            plt.close(fig)


def family(name: str) -> str:
    """The family a model or method belongs to, by the workflow's naming convention: ``MeRino*`` (ours),
    ``GPT-depth*``/``GPT-width*``/``GPT depth*``/``GPT width*`` (naive scaling), anything else (baselines)."""
    if name.startswith("MeRino"):
        return "MeRino"
    if name.replace(" ", "-").startswith(("GPT-depth", "GPT-width")):
        return "naive scaling"
    return "baselines"


def shades(colour: str, n: int) -> list[str]:
    """``n`` shades of ``colour``, from darker to lighter (the members of one family)."""
    from matplotlib.colors import to_hex, to_rgb

    rgb = np.array(to_rgb(colour))
    mix = np.linspace(-0.35, 0.45, n) if n > 1 else [0.0]
    return [to_hex(rgb * (1 + m) if m < 0 else rgb + (1 - rgb) * m) for m in mix]


def family_colours(names: list[str]) -> dict[str, str]:
    """A colour per name: its family's colour, shaded when a family has several members."""
    members: dict[str, list[str]] = {}
    for name in dict.fromkeys(names):
        members.setdefault(family(name), []).append(name)
    return {
        name: colour
        for fam, group in members.items()
        for name, colour in zip(group, shades(FAMILY_COLOURS[fam], len(group)))
    }


def family_handles(families: list[str]) -> list:
    """Legend handles, one uniform marker per family present (bubble sizes would mislead in a legend)."""
    from matplotlib.lines import Line2D

    return [
        Line2D([], [], ls="", marker="o", ms=7, alpha=0.6, color=FAMILY_COLOURS[f], label=f)
        for f in FAMILY_COLOURS
        if f in families
    ]


def wrap(text: str, where, size: str = "axes.titlesize") -> str:
    """``text`` broken into lines no wider than ``where`` (an axes, or a figure for a suptitle) at the font
    size of rcParams ``size`` (for long titles such as the paper's claims)."""
    import matplotlib
    from matplotlib.font_manager import FontProperties

    points = FontProperties(size=matplotlib.rcParams[size]).get_size_in_points()
    fig = getattr(where, "figure", None) or where
    inches = fig.get_figwidth() * (where.get_position().width if where is not fig else 0.95)
    chars = max(20, int(inches * 72 / (0.55 * points)))
    return "\n".join(textwrap.fill(line, chars) for line in text.split("\n"))


def legend_outside(ax, handles=None, title: str | None = None, **kwargs):
    """The legend of ``ax`` to the right of its axes, clear of the data (:func:`layout` makes room)."""
    kw = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0, "title": title, **kwargs}
    return ax.legend(handles=handles, **kw) if handles is not None else ax.legend(**kw)


def log_axis(axis) -> None:
    """Readable labels on a log axis: plain numbers when it spans under a decade, 1, 2 and 5 times each decade
    up to two decades, decades beyond (matplotlib's default crowds ``2x10^4 3x10^4 ...`` together)."""
    from matplotlib.ticker import FuncFormatter, LogFormatterSciNotation, LogLocator, NullFormatter

    lo, hi = sorted(axis.get_view_interval())
    if hi / lo < 10:
        plain = FuncFormatter(lambda v, _: f"{v:g}")
        axis.set_major_formatter(plain)
        axis.set_minor_formatter(plain)
        return
    if hi / lo < 100:
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(LogFormatterSciNotation(labelOnlyBase=False))
    axis.set_minor_formatter(NullFormatter())


def layout(fig) -> None:
    """Fix the layout (tight, legends outside included) once; labels placed afterwards stay where put."""
    fig.tight_layout()
    fig.canvas.draw()


def place_labels(ax, x, y, labels, fontsize: float = LABEL_SIZE) -> list:
    """Label the point at data ``x[i], y[i]`` with ``labels[i]``, clear of every marker drawn on ``ax``.

    Greedy, most crowded point first: candidate boxes ring the point's marker (above, below, right, left,
    diagonals), ever further out; a box must stay inside the axes, overlap no label already placed and hide
    no other point; among those the nearest touching the fewest other markers wins. Labels pushed out of
    the two nearest rings get a leader line. Call after :func:`layout` (positions are in display space)."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    px = fig.dpi / 72
    x, y = np.asarray(x, float), np.asarray(y, float)
    pts = ax.transData.transform(np.column_stack([x, y]))
    markers, radii = _data_points(ax)
    frame = ax.get_window_extent(renderer).extents
    extents = []
    for label in labels:
        t = ax.text(0, 0, label, fontsize=fontsize)
        box = t.get_window_extent(renderer)
        extents.append((box.width, box.height))
        t.remove()
    dirs = [(0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (-1, 1), (1, -1), (-1, -1)]
    gaps = (1.5 + np.array([0, 5, 12, 22, 35, 50])) * px
    crowd = (np.hypot(*(pts[:, None, :] - markers[None, :, :]).transpose(2, 0, 1)) < 60 * px).sum(axis=1)
    placed, annotations = [], [None] * len(pts)
    for i in np.argsort(-crowd, kind="stable"):
        w, h = extents[i]
        own = np.hypot(*(markers - pts[i]).T) <= _PAD_PX
        radius = radii[own].max(initial=0.5 * np.sqrt(MARKER_AREA) * px)
        best = None
        for ring, gap in enumerate(gaps):
            for k, (ux, uy) in enumerate(dirs):
                cx, cy = pts[i, 0] + ux * (radius + gap + w / 2), pts[i, 1] + uy * (radius + gap + h / 2)
                box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
                hard = (
                    int(not _inside(box, frame))
                    + sum(_overlap(box, b) for b in placed)
                    + int(np.sum(~own & _contains(box, markers)))
                )
                soft = int(np.sum(~own & _touches(box, markers, radii)))
                cost = (hard, 2 * soft + ring, k)
                if best is None or cost < best[0]:
                    best = (cost, box, ring, soft)
            if best[0][0] == 0 and best[3] == 0:
                break
        _, box, ring, _ = best
        placed.append(box)
        dx, dy = ((box[0] + box[2]) / 2 - pts[i, 0]) / px, ((box[1] + box[3]) / 2 - pts[i, 1]) / px
        leader = {"arrowstyle": "-", "lw": 0.5, "color": "0.4", "shrinkA": 0, "shrinkB": radius / px}
        annotations[i] = ax.annotate(
            labels[i],
            (x[i], y[i]),
            xytext=(dx, dy),
            textcoords="offset points",
            ha="center",
            va="center",
            fontsize=fontsize,
            arrowprops=leader if ring >= 2 else None,
        )
    return annotations


def _inside(box, frame) -> bool:
    return (
        box[0] >= frame[0] - _PAD_PX
        and box[1] >= frame[1] - _PAD_PX
        and box[2] <= frame[2] + _PAD_PX
        and box[3] <= frame[3] + _PAD_PX
    )


def _overlap(a, b) -> bool:
    return min(a[2], b[2]) - max(a[0], b[0]) > _PAD_PX and min(a[3], b[3]) - max(a[1], b[1]) > _PAD_PX


def _contains(box, pts) -> np.ndarray:
    return (pts[:, 0] > box[0]) & (pts[:, 0] < box[2]) & (pts[:, 1] > box[1]) & (pts[:, 1] < box[3])


def _touches(box, pts, radii) -> np.ndarray:
    """Which circles (centres ``pts``, ``radii``) the box intersects."""
    nx, ny = np.clip(pts[:, 0], box[0], box[2]), np.clip(pts[:, 1], box[1], box[3])
    return np.hypot(pts[:, 0] - nx, pts[:, 1] - ny) < radii


def check_legible(fig) -> list[str]:
    """What a reader could not read, one line each (empty when the figure is legible): texts (titles, axis
    and tick labels, point labels, legends) running off the figure or overlapping each other, point labels
    leaving their axes or hiding another point, legends covering data."""
    from matplotlib.legend import Legend
    from matplotlib.text import Annotation, Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = [a for a in fig.findobj(Legend) if a.get_visible()]
    in_legend = {id(t) for leg in legends for t in leg.findobj(Text)}
    hidden_ticks = {id(t) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis) for t in _idle_tick_labels(axis)}
    boxes = [
        (repr(t.get_text()), t.get_window_extent(renderer).extents)
        for t in fig.findobj(Text)
        if t.get_visible() and t.get_text().strip() and id(t) not in in_legend and id(t) not in hidden_ticks
    ]
    boxes += [
        (f"legend {[t.get_text() for t in leg.get_texts()]}", leg.get_window_extent(renderer).extents)
        for leg in legends
    ]
    problems = [f"{name} runs off the figure" for name, box in boxes if not _inside(box, fig.bbox.extents)]
    problems += [
        f"{a} overlaps {b}"
        for k, (a, box_a) in enumerate(boxes)
        for b, box_b in boxes[k + 1 :]
        if _overlap(box_a, box_b)
    ]
    for n, ax in enumerate(fig.axes):
        frame, pts = ax.get_window_extent(renderer).extents, _data_points(ax)[0]
        for t in ax.texts:
            box = t.get_window_extent(renderer).extents
            if not _inside(box, frame):
                problems.append(f"{t.get_text()!r} leaves axes {n}")
            covered = _contains(box, pts)
            if isinstance(t, Annotation):
                covered &= np.hypot(*(pts - ax.transData.transform(t.xy)).T) > _PAD_PX
            if covered.any():
                problems.append(f"{t.get_text()!r} hides {int(covered.sum())} data point(s) of axes {n}")
        bars = [p.get_window_extent(renderer).extents for p in ax.patches]
        for leg in legends:
            box = leg.get_window_extent(renderer).extents
            if _contains(box, pts).any() or any(_overlap(box, b) for b in bars):
                problems.append(f"legend {[t.get_text() for t in leg.get_texts()]} covers data of axes {n}")
    return problems


def _idle_tick_labels(axis) -> list:
    """Tick labels matplotlib keeps but does not draw (ticks outside the view interval)."""
    tr = axis.get_transform()
    lo, hi = sorted(tr.transform(np.array(axis.get_view_interval(), float)))
    eps = 1e-9 * max(1.0, hi - lo)
    idle = []
    for locs, ticks in (
        (axis.get_majorticklocs(), axis.get_major_ticks()),
        (axis.get_minorticklocs(), axis.get_minor_ticks()),
    ):
        for loc, tick in zip(locs, ticks):
            v = tr.transform(np.array([loc], float))[0]
            if not lo - eps <= v <= hi + eps:
                idle += [tick.label1, tick.label2]
    return idle


def _data_points(ax) -> tuple[np.ndarray, np.ndarray]:
    """Display coordinates of the axes' markers (scatter offsets, line vertices) and their radii in pixels."""
    px = ax.figure.dpi / 72
    pts, radii = [], []
    for c in ax.collections:
        if len(c.get_offsets()):
            xy = c.get_offset_transform().transform(c.get_offsets())
            pts.append(xy)
            radii.append(
                np.broadcast_to(0.5 * np.sqrt(c.get_sizes()) * px, len(xy)) if len(c.get_sizes()) else np.zeros(len(xy))
            )
    for ln in ax.lines:
        if len(ln.get_xydata()):
            xy = ln.get_transform().transform(ln.get_xydata())
            pts.append(xy)
            radii.append(
                np.full(len(xy), 0.5 * ln.get_markersize() * px if ln.get_marker() not in ("", "None", None) else 0.0)
            )
    if not pts:
        return np.empty((0, 2)), np.empty(0)
    pts, radii = np.vstack(pts), np.concatenate(radii)
    keep = np.isfinite(pts).all(axis=1)
    return pts[keep], radii[keep]
