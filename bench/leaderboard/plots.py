"""SVG plots of a board, drawn with matplotlib's object API (no pyplot, no global state).

Output is deterministic (fixed ``svg.hashsalt``, no date in the metadata, seeded jitter) so
that the same store builds the same bytes. Text is written as SVG ``<text>`` (``svg.fonttype
none``), which matplotlib XML-escapes; entry names are also stripped of mathtext (``$``) so a
name can never be parsed as a formula, and shortened to fit.
"""

import io

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from bench.ranking.board import Board

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf"]
_RC = {"svg.hashsalt": "ricord-bench", "svg.fonttype": "none", "font.size": 9,
       "font.family": "DejaVu Sans", "axes.spines.top": False, "axes.spines.right": False}


def label(name: str, limit: int = 32) -> str:
    """A display name safe for matplotlib: no mathtext, at most ``limit`` characters."""
    text = name if len(name) <= limit else name[: limit - 1] + "…"
    return text.replace("$", r"\$")


def _svg(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    with matplotlib.rc_context(_RC):
        figure.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    return buffer.getvalue()


def _figure(width: float, height: float) -> Figure:
    with matplotlib.rc_context(_RC):
        return Figure(figsize=(width, height), layout="constrained")


HIDDEN_MIN_CASES = 20
"""On a hidden split, the fewest counted cases an entry needs for its box to be drawn."""


def withheld(board: Board) -> dict[str, str]:
    """Plots left out of a board because they would reveal hidden per-case data, with why.

    On a split whose per-case scores are hidden, ROC curves are never drawn: the exact
    staircase of an ROC curve gives every case's label to anyone who sorts their own scores.
    The distribution plot is drawn as bare boxes (quartiles and median, no whiskers, outliers
    or case points) and only when every entry has at least :data:`HIDDEN_MIN_CASES` counted
    cases, since with few cases the quartiles are themselves case values.
    """
    if not board.hide_per_case:
        return {}
    reasons = {}
    if board.spec.kind == "classification":
        reasons["roc"] = ("ROC curves are not shown on this split: a curve's exact steps would reveal "
                          "the reference label of every case. The AUROC and its confidence interval are "
                          "in the table.")
    if board.matrix is not None:
        fewest = int(board.matrix.notna().sum().min()) if board.matrix.shape[1] else 0
        if fewest < HIDDEN_MIN_CASES:
            reasons["distribution"] = (
                f"The per-case distribution is not shown on this split: an entry has {fewest} counted "
                f"cases, fewer than {HIDDEN_MIN_CASES}, so its quartiles would be single case values.")
    return reasons


def distribution_svg(board: Board) -> bytes | None:
    """Per-case distribution of the primary metric per entry: box plot plus jittered cases.

    Where the task hides per-case scores on this split only bare boxes are drawn (quartiles
    and median; no whiskers, outliers or case points), and none at all when :func:`withheld`
    says so, so that no single case value can be read off the plot.
    """
    if board.matrix is None or "distribution" in withheld(board):
        return None
    entries = board.entries
    hidden = board.hide_per_case
    with matplotlib.rc_context(_RC):
        figure = _figure(6.0, 0.55 * len(entries) + 1.2)
        axes = figure.add_subplot()
        data = [board.matrix[e.run.submission].dropna().to_numpy() for e in entries]
        positions = np.arange(len(entries))[::-1]
        box = axes.boxplot([d if d.size else [np.nan] for d in data], positions=positions,
                           orientation="horizontal", whis=0 if hidden else 1.5, showcaps=not hidden,
                           widths=0.5, showfliers=False, patch_artist=True,
                           medianprops={"color": "#222222"})
        if hidden:
            for whisker in box["whiskers"]:
                whisker.remove()
        for part in ("whiskers", "caps", "medians"):  # named in the SVG, so tests can find them
            for number, artist in enumerate(box[part]):
                artist.set_gid(f"{part}-{number}")
        for patch, index in zip(box["boxes"], range(len(entries)), strict=True):
            patch.set_facecolor(PALETTE[index % len(PALETTE)] + "55")
            patch.set_edgecolor(PALETTE[index % len(PALETTE)])
        if not hidden:
            rng = np.random.default_rng(0)
            for index, (values, y) in enumerate(zip(data, positions, strict=True)):
                jitter = rng.uniform(-0.18, 0.18, size=values.size)
                axes.scatter(values, y + jitter, s=12, color=PALETTE[index % len(PALETTE)],
                             alpha=0.8, linewidths=0, zorder=3)
        axes.set_yticks(positions, [f"{e.rank}. {label(e.run.name)}" for e in entries])
        axes.set_xlabel(f"{board.spec.primary_key} per case ({board.spec.primary_direction} is better)")
        axes.grid(axis="x", color="#dddddd", linewidth=0.6)
        axes.set_axisbelow(True)
        return _svg(figure)


def blob_svg(board: Board) -> bytes | None:
    """challengeR-style blob plot: how often each entry takes each rank over the bootstrap.

    Entries run along x in full-data rank order; circle area is the share of resamples in
    which the entry has that rank; the black point and bar are the median rank and the rank
    interval.
    """
    boot = board.bootstrap
    if boot is None or boot.ranks.shape[0] == 0 or len(board.entries) < 2:
        return None
    entries = board.entries
    n = len(entries)
    index_of = {name: i for i, name in enumerate(boot.entries)}
    with matplotlib.rc_context(_RC):
        figure = _figure(max(3.5, 0.9 * n + 1.5), max(2.8, 0.45 * n + 1.6))
        axes = figure.add_subplot()
        for x, entry in enumerate(entries):
            row = boot.frequencies[index_of[entry.run.submission]]
            ranks = np.flatnonzero(row) + 1
            axes.scatter(np.full(ranks.size, x), ranks, s=row[ranks - 1] * 900, alpha=0.55,
                         color=PALETTE[x % len(PALETTE)], linewidths=0)
            axes.vlines(x, entry.rank_low, entry.rank_high, color="#222222", linewidth=1.2)
            axes.scatter([x], [entry.median_rank], s=14, color="#222222", zorder=3)
        axes.set_xticks(range(n), [label(e.run.name, 20) for e in entries], rotation=30, ha="right")
        axes.set_yticks(range(1, n + 1))
        axes.set_ylim(n + 0.6, 0.4)
        axes.set_xlim(-0.6, n - 0.4)
        axes.set_ylabel("rank in bootstrap resamples")
        axes.grid(axis="y", color="#eeeeee", linewidth=0.6)
        axes.set_axisbelow(True)
        return _svg(figure)


def roc_svg(board: Board) -> bytes | None:
    """ROC curves of the primary head per entry (one panel per class; binary: the positive).

    None on a hidden split (see :func:`withheld`).
    """
    spec = board.spec
    if spec.kind != "classification" or "roc" in withheld(board):
        return None
    from sklearn.metrics import roc_curve

    head = next(h for h in spec.heads if h.name == spec.primary_key.split(".")[0])
    classes = [head.positive] if len(head.classes) == 2 else list(head.classes)
    with matplotlib.rc_context(_RC):
        columns = min(len(classes), 2)
        rows = int(np.ceil(len(classes) / columns))
        figure = _figure(3.4 * columns + 1.8, 3.2 * rows)
        grid = figure.subplots(rows, columns, squeeze=False)
        for axes, cls in zip(grid.flat, classes, strict=False):
            for index, entry in enumerate(board.entries):
                table = entry.run.per_case
                if head.name not in table.columns or cls not in table.columns:
                    continue
                scores = table[cls].astype(float).to_numpy()
                truth = (table[head.name].astype(str) == cls).to_numpy()
                keep = ~np.isnan(scores)
                if truth[keep].all() or not truth[keep].any():
                    continue
                fpr, tpr, _ = roc_curve(truth[keep], scores[keep])
                axes.plot(fpr, tpr, color=PALETTE[index % len(PALETTE)], linewidth=1.4,
                          label=f"{entry.rank}. {label(entry.run.name, 24)}", drawstyle="default")
            axes.plot([0, 1], [0, 1], color="#999999", linestyle="--", linewidth=0.8)
            axes.set_title(f"{label(cls)} vs rest" if len(classes) > 1 else _binary_title(head), fontsize=9)
            axes.set_xlabel("false positive rate")
            axes.set_ylabel("true positive rate")
            axes.set_aspect("equal")
        for axes in list(grid.flat)[len(classes):]:
            axes.set_visible(False)
        handles, labels = grid.flat[0].get_legend_handles_labels()
        if handles:
            figure.legend(handles, labels, loc="outside right upper", frameon=False)
        return _svg(figure)


def _binary_title(head) -> str:
    """e.g. ``covid: positive vs negative`` (the positive class first)."""
    others = [c for c in head.classes if c != head.positive]
    return f"{label(head.name)}: {label(head.positive)} vs {label(others[0])}"


def reliability_svg(calibration: dict) -> bytes | None:
    """Reliability diagram of one head: observed fraction against mean predicted probability per bin,
    with the bootstrap band as error bars, one series per class (``scores.json``'s ``calibration``).

    Never drawn on a hidden split: a bin's observed fraction, next to the entrant's own
    probabilities, would give away the labels of the cases in small bins.
    """
    series = [(name, entry["bins"]) for name, entry in calibration.items() if entry.get("bins")]
    if not series:
        return None
    figure = _figure(4.2, 3.6)
    axes = figure.subplots()
    axes.plot([0, 1], [0, 1], color="#999999", linewidth=0.8, linestyle="--", label="perfect calibration")
    for k, (name, bins) in enumerate(series):
        x = np.array([b["mean_predicted"] for b in bins], dtype=float)
        y = np.array([b["observed"] for b in bins], dtype=float)
        low = np.array([b["observed_low"] if b["observed_low"] is not None else np.nan for b in bins],
                       dtype=float)
        high = np.array([b["observed_high"] if b["observed_high"] is not None else np.nan for b in bins],
                        dtype=float)
        color = PALETTE[k % len(PALETTE)]
        axes.errorbar(x, y, yerr=np.vstack([np.maximum(y - low, 0), np.maximum(high - y, 0)]), color=color,
                      marker="o", markersize=3.5, linewidth=1, capsize=2, label=label(name))
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("mean predicted probability")
    axes.set_ylabel("observed fraction")
    axes.legend(fontsize=7, frameon=False, loc="upper left")
    return _svg(figure)


THUMBNAIL_PX = 256
"""Width and height of a case gallery thumbnail in pixels."""
MAX_SLICE_PX = 512
"""Slices larger than this (a 3000-pixel radiograph) are downsampled by a whole stride first."""
REFERENCE_COLOUR = "#00e676"
PREDICTION_COLOUR = "#ff3d9a"


def case_png(image: np.ndarray, aspect: float, reference: np.ndarray | None, prediction: np.ndarray | None,
             *, window: tuple[float, float]) -> bytes:
    """A gallery thumbnail: the slice in grey (``window`` low and high), the reference contour in
    green and the prediction contour in pink, on a black square of :data:`THUMBNAIL_PX` pixels.

    ``image`` is (rows, columns) as displayed; ``aspect`` is the row spacing over the column
    spacing, so anatomy keeps its proportions. The PNG carries no software or date metadata,
    so the same slice gives the same bytes.
    """
    inch = THUMBNAIL_PX / 100
    with matplotlib.rc_context(_RC):
        figure = Figure(figsize=(inch, inch), dpi=100, facecolor="black")
        axes = figure.add_axes((0, 0, 1, 1))
        axes.set_axis_off()
        axes.set_facecolor("black")
        low, high = window
        axes.imshow(image, cmap="gray", vmin=low, vmax=high if high > low else low + 1, aspect=aspect,
                    interpolation="antialiased")
        for mask, colour in ((reference, REFERENCE_COLOUR), (prediction, PREDICTION_COLOUR)):
            if mask is not None and mask.any() and not mask.all():
                axes.contour(mask.astype(np.uint8), levels=[0.5], colors=[colour], linewidths=1.1)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100, facecolor="black", metadata={"Software": None})
    return buffer.getvalue()
