"""The PNG figures: gap (or MLP training objective) vs fit time per case, and the closed-form
crossover's time to reach each gap vs n_features. matplotlib is imported only when drawing.

Called by gdsolve.bench.report (write_outputs) and tests (plot_gap).
"""

GAP_FLOOR = 1e-16  # gaps at or below round-off are drawn here on the log-scale plots


def _save_png(fig, path):
    """PNG with a 64-colour palette: line plots stay sharp at a third of the size."""
    import io

    try:
        from PIL import Image
    except ImportError:  # matplotlib depends on Pillow, but keep plain saving as a fallback
        fig.savefig(path)
        return
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    buffer.seek(0)
    with Image.open(buffer) as image:
        image.convert("RGB").quantize(colors=64).save(path, optimize=True)


def plot_gap(case_record, path):
    """Relative gap to the exact optimum vs fit time, log-log, one line per solver (a marker for
    closed forms). MLPs have no exact optimum: their training objective is drawn instead."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mlp = case_record["problem"] is None
    key = "objective" if mlp else "gap"
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=80)
    drawn = 0
    for row in case_record["results"]:
        points = [(p["time"], max(p[key], GAP_FLOOR)) for p in row["trace"]
                  if p.get(key) is not None and p["time"] > 0]
        if not points:
            continue
        points.sort()
        t, g = zip(*points, strict=True)
        style = "-o" if len(points) > 1 else "s"
        ax.plot(t, g, style, label=row["solver"], markersize=5)
        drawn += 1
    ax.set_xscale("log")
    ax.set_yscale("linear" if mlp else "log")
    ax.set_xlabel("fit time (s)")
    ax.set_ylabel("training objective (loss + penalty)" if mlp else
                  f"relative gap to the exact optimum (<= {GAP_FLOOR:g} drawn at {GAP_FLOOR:g})",
                  fontsize=9)
    ax.set_title(f"{case_record['name']} ({case_record['dtype']})" +
                 (": non-convex, no exact optimum" if mlp else ""), fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if drawn:
        ax.legend(fontsize=8)
    fig.subplots_adjust(left=0.15, right=0.97, bottom=0.12, top=0.92)  # tight_layout is slow
    _save_png(fig, path)
    plt.close(fig)
    return drawn


def plot_crossover(crossover, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(crossover["targets"]), figsize=(4.2 * len(
        crossover["targets"]), 4.0), dpi=80, squeeze=False)
    names = sorted({name for row in crossover["rows"] for name in row["solvers"]})
    for ax, target in zip(axes[0], crossover["targets"], strict=True):
        key = f"{target:g}"
        for name in names:
            pts = [(row["n_features"], row["solvers"][name]["time_to_gap"].get(key))
                   for row in crossover["rows"] if name in row["solvers"]]
            pts = [(p, t) for p, t in pts if t is not None and t > 0]
            if pts:
                ax.plot(*zip(*pts, strict=True), "-o", label=name, markersize=4)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("n_features")
        ax.set_ylabel("time to reach the gap (s)")
        ax.set_title(f"relative gap {key}, n = {crossover['n_samples']}", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.13, top=0.92, wspace=0.3)
    _save_png(fig, path)
    plt.close(fig)
