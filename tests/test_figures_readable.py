"""Figures a reader can read: every figure of the demo (plot_results), the family comparison
(compare_runs) and the ranking (rank_measures), drawn from small hand-made documents in the real
formats, has no overlapping text, no legend over plotted data, and is at most ~2000 px wide as saved.
The checker is shown to catch the old figures' faults (labels on one point, a legend over points, a
wide figure), and the figure-specific promises are checked on the data: every epoch in the accuracy
curves, a diverging colour scale centred at 0 for signed reinit drops, alpha's real range, the
forest plot's title, a model at chance named in the headline and the reinit heatmap, natural layer
order in the tidy table."""
from __future__ import annotations

import io
from itertools import combinations
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PathCollection
from matplotlib.image import AxesImage
from matplotlib.patches import Rectangle
from matplotlib.text import Annotation, Text

import compare_runs
import rank_measures
import schema
from comparison import stats
from comparison.family import build_family
from comparison.measures import load_measures
from comparison.ranking import Weighting, ranked
from plotting import dse, figures, headline, hsic, reinit, spectra  # noqa: F401  (registers the builders)
from plotting.common import style, subplots
from plotting.registry import get_figure
from schema.order import forward_order, natural_key
from tests.checks import document_header, write_document

MAX_WIDTH_PX = 2000
LAYERS = ["features.0", "features.2", "features.5", "features.7", "features.10", "features.12"]
EPOCHS = [0, 1, 2, 3, 4, 5, 10, 15]


# -- the checker -----------------------------------------------------------------------------------------
def renderer_of(fig):
    """An Agg renderer of ``fig`` (its window extents need one)."""
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    return fig.canvas.get_renderer()


def _drawn_tick_labels(fig) -> list:
    """The tick labels matplotlib draws: those whose tick lies in the view (others keep stale text)."""
    labels = []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            slack = 1e-9 * max(1.0, abs(high - low))
            for ticks in (axis.get_major_ticks(), axis.get_minor_ticks()):
                labels += [tick.label1 for tick in ticks if low - slack <= tick.get_loc() <= high + slack]
                labels += [tick.label2 for tick in ticks if low - slack <= tick.get_loc() <= high + slack]
    return labels


def _all_tick_labels(fig) -> set[int]:
    return {id(tick.label1) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)
            for ticks in (axis.get_major_ticks(), axis.get_minor_ticks()) for tick in ticks} | \
        {id(tick.label2) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)
         for ticks in (axis.get_major_ticks(), axis.get_minor_ticks()) for tick in ticks}


def _texts(fig, renderer) -> list[tuple[str, float, bool, object]]:
    """``(text, rotation, is a tick label, extent)`` of every text the figure draws."""
    ticks = _all_tick_labels(fig)
    drawn = [text for text in fig.findobj(Text) if id(text) not in ticks] + _drawn_tick_labels(fig)
    found = []
    for text in drawn:
        owner = text.axes
        if not text.get_visible() or not text.get_text().strip() or (owner is not None and not owner.get_visible()):
            continue
        if isinstance(text, Annotation):  # its letters, without its leader line
            text.update_positions(renderer)
        box = Text.get_window_extent(text, renderer)
        if np.isfinite(box.get_points()).all():
            found.append((text.get_text(), text.get_rotation(), id(text) in ticks, box.shrunk(0.97, 0.9)))
    return found


def _parallel_ticks(a, b) -> bool:
    """Two rotated tick labels of one axis: their upright boxes overlap while their letters do not."""
    return a[2] and b[2] and a[1] == b[1] and a[1] % 90 != 0


def _points(ax, renderer) -> list:
    """Display positions of the plotted points and the extents of bars and images of ``ax``."""
    boxes = []
    for collection in ax.collections:
        if isinstance(collection, PathCollection) and len(collection.get_offsets()):
            xy = collection.get_offset_transform().transform(collection.get_offsets())
            boxes += [("point", x, y) for x, y in xy]
    for line in ax.lines:
        if line.get_transform() == ax.transData:
            boxes += [("point", x, y) for x, y in line.get_transform().transform(line.get_xydata())]
    for patch in ax.patches:
        if isinstance(patch, Rectangle) and patch.get_transform() == ax.transData and patch.get_height() > 0:
            boxes.append(("box", patch.get_window_extent(renderer)))
    boxes += [("box", image.get_window_extent(renderer)) for image in ax.images if isinstance(image, AxesImage)]
    return boxes


def _covered(legend_box, found) -> bool:
    if found[0] == "point":
        x, y = found[1:]
        return np.isfinite(x) and np.isfinite(y) and legend_box.contains(x, y)
    return legend_box.overlaps(found[1])


def saved_width(fig, renderer) -> int:
    """Width in pixels of the figure as the CLIs save it: its tight bounding box, padded, at the saved dpi."""
    inches = fig.get_tightbbox(renderer).width + 2 * matplotlib.rcParams["savefig.pad_inches"]
    return round(inches * matplotlib.rcParams["savefig.dpi"])


def faults(name: str, fig) -> list[str]:
    """What makes ``fig`` hard to read: overlapping texts, a legend over data, a width over ~2000 px."""
    with style():
        renderer = renderer_of(fig)
        fig.draw(renderer)
        found = []
        for a, b in combinations(_texts(fig, renderer), 2):
            if a[3].overlaps(b[3]) and not _parallel_ticks(a, b):
                found.append(f"{name}: texts {a[0]!r} and {b[0]!r} overlap")
        legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None] + list(fig.legends)
        for legend in legends:
            box = legend.get_window_extent(renderer)
            for ax in fig.axes:
                if ax.get_visible() and any(_covered(box, item) for item in _points(ax, renderer)):
                    found.append(f"{name}: a legend covers data of the axes {ax.get_title()!r}")
        width = saved_width(fig, renderer)
    if width > MAX_WIDTH_PX:
        found.append(f"{name}: {width} px wide")
    return found


def test_the_checker_catches_overlapping_labels_a_legend_over_points_and_a_wide_figure():
    fig, ax = subplots(figsize=(5, 4))
    ax.scatter([0.0, 0.01, 1.0], [1.0, 1.02, 0.0], label="layers")
    for x, y, name in ((0.0, 1.0, "features.0"), (0.01, 1.02, "features.2")):
        ax.annotate(name, (x, y), xytext=(4, 3), textcoords="offset points", fontsize=8)
    ax.legend(loc="upper left")
    found = faults("old headline", fig)
    assert any("'features.0' and 'features.2' overlap" in fault for fault in found), found
    assert any("legend covers data" in fault for fault in found), found
    wide, _ = subplots(figsize=(19, 2))
    assert any("px wide" in fault for fault in faults("old spectra", wide))
    with style():  # the width is the saved PNG's
        buffer = io.BytesIO()
        wide.savefig(buffer, format="png")
        assert abs(int.from_bytes(buffer.getvalue()[16:20], "big") - saved_width(wide, renderer_of(wide))) <= 2


# -- the demo's figures (plot_results) ------------------------------------------------------------------
def _run_record(epochs: int = 15) -> dict:
    rows = [{"epoch": e, "train_loss": 2.0 / e, "val_loss": 2.1 / e, "val_top1": min(97.0, 40 + 6 * e),
             "train_top1": min(99.0, 42 + 6 * e), "eval_split": "val"} for e in range(1, epochs + 1)]
    return document_header("run", 0, None) | {"epochs": rows, "test": {"top1": 97.2, "loss": 0.1},
                                             "status": {"state": "finished", "last_epoch": epochs}}


def _projections(epoch: int) -> dict:
    rng = np.random.default_rng(epoch)
    # crowded on purpose: three layers with nearly no bias and nearly no drop (the old labels piled up)
    mass = [0.5, 0.5, 0.52, 0.81, 0.64, 1.0] if epoch else [0.5] * 6
    p = [1.0, 0.9, 0.5, 0.02, 0.03, 1e-19] if epoch else [1.0] * 6
    layers = [{"name": name, "mass": m, "mean": m - 0.5, "std": 0.1, "sign_test_p": q,
               "projections": list(rng.normal(0.5 - m, 0.2, 24))} for name, m, q in zip(LAYERS, mass, p)]
    return document_header("projections", 0, epoch) | {"layers": layers, "net": {"mass": 0.6}, "normalize": True}


def reinit_document(*, top1: float = 97.0, drops_from_0=(0.01, 0.023, 0.03, 0.32, 0.06, 0.53)) -> dict:
    keys = ["0", "1", "2", "5", "10", "15", "rand"]
    rows = []
    for key in keys:
        if key == "rand":
            drops = [0.9] * len(LAYERS)
        elif key == "15":
            drops = [0.0] * len(LAYERS)
        else:
            fade = 1 - int(key) / 15
            drops = [d * fade - (0.04 if key == "2" and i == 1 else 0.0) for i, d in enumerate(drops_from_0)]
        rows.append({"key": key, "source": "rand" if key == "rand" else "snapshot",
                     "epoch": None if key == "rand" else int(key), "top1": [top1 * (1 - d) for d in drops],
                     "relative_drop": drops})
    return document_header("reinit", 0, 15) | {
        "top1_test": top1, "top5_test": 99.0, "test_samples": 360, "num_classes": 10, "chance_top1": 10.0,
        "layer_names": LAYERS, "rows": rows, "init_from_epoch": {row["key"]: row["top1"] for row in rows},
        "stem": "lenet_epoch0015"}


def _spectra(epoch: int) -> dict:
    rng = np.random.default_rng(100 + epoch)
    layers = []
    for index, name in enumerate(LAYERS):
        eigenvalues = list(np.sort(rng.pareto(2.5, 150) + 0.01))
        layers.append({"name": name, "kind": "conv", "shape": [16, 6, 5, 5], "N": 16, "M": 150, "n_matrices": 1,
                       "alpha": 3.0 + index * 4.4 + epoch * 0.1, "entropy": 0.9 - 0.01 * epoch,
                       "stable_rank": 2.0 + index, "rand_distance": 0.05 * index + 0.01 * epoch,
                       "eigenvalues": eigenvalues, "xmin": float(np.quantile(eigenvalues, 0.6)), "n_tail": 60,
                       "rand_eigenvalues": list(np.asarray(eigenvalues) * 0.8), "bulk_max": 2.0, "num_spikes": 3,
                       "num_traps": 1, "rand_bulk_max": 3.0})
    return document_header("spectra", 0, epoch) | {"conv_mode": "slices", "layers": layers}


def _dse(epoch: int) -> dict:
    return document_header("dse", 0, epoch) | {"settings": {"sigma": 10.0, "t": 1, "layer": None},
                                               "layer": None, "dse": 3 + 0.1 * epoch, "dsmi_y": 0.1 * epoch,
                                               "dsmi_x": 0.05 * epoch, "log2_size": 8.5}


def _hsic(epoch: int) -> dict:
    layers = [{"name": name, "hsic_x": 0.1 * i + 0.01 * epoch, "hsic_y": 0.05 * i + 0.02 * epoch}
              for i, name in enumerate(LAYERS)]
    return document_header("hsic", 0, epoch) | {"settings": {"samples": 100, "sigma": None, "normalized": False},
                                                "probe": {"size": 100, "split": "test"}, "layers": layers}


def demo_run(reinit_doc: dict | None = None) -> schema.Run:
    documents = {"run": [_run_record()], "projections": [_projections(e) for e in EPOCHS],
                 "reinit": [reinit_doc or reinit_document()], "spectra": [_spectra(e) for e in EPOCHS],
                 "dse": [_dse(e) for e in EPOCHS], "hsic": [_hsic(e) for e in EPOCHS]}
    return schema.Run.of_documents(".", documents)


DEMO_FIGURES = ("training", "headline", "reinit", "projection_heatmaps", "projection_histograms", "dse", "spectra",
                "spectra_esd", "spectra_alpha", "hsic_plane", "hsic_epochs")


@pytest.fixture(scope="module")
def demo() -> schema.Run:
    return demo_run()


@pytest.mark.parametrize("name", DEMO_FIGURES)
def test_the_demo_figures_are_readable(demo, name):
    found = []
    with style():
        for stem, fig in get_figure(name)(demo, {"epochs": None, "spectra_layer": None}):
            found += faults(stem, fig)
    assert not found, "\n".join(found)


def test_the_headline_colours_have_a_legend_and_every_label_is_placed(demo):
    ((_, fig),) = headline.headline(demo, {})
    legend = fig.axes[1].get_legend()
    assert [text.get_text() for text in legend.get_texts()] == LAYERS
    labels = [text.get_text() for text in fig.axes[0].texts]
    assert sorted(labels, key=natural_key) == LAYERS  # crowded points still get their label, none overlaps


def test_a_model_at_chance_is_named_in_the_headline_and_the_reinit_heatmap(demo):
    at_chance = reinit_document(top1=11.0)
    ((_, fig),) = headline.headline(demo_run(at_chance), {})
    title = fig._suptitle.get_text()
    assert "MODEL AT CHANCE" in title and "untrained model" in title and "Spearman rho =" not in title
    ((_, trained),) = headline.headline(demo, {})
    assert "Spearman rho =" in trained._suptitle.get_text()
    heatmap = reinit.reinit_heatmap(at_chance)
    assert "MODEL AT CHANCE" in heatmap._suptitle.get_text()
    assert not faults("headline at chance", fig) + faults("reinit at chance", heatmap)
    assert "MODEL AT CHANCE" not in reinit.reinit_heatmap(reinit_document())._suptitle.get_text()
    stored = reinit_document() | {"chance": {"top1": 97.0, "chance": 10.0, "n_test": 360, "p_value": 0.5,
                                             "above_chance": False}}  # a verdict the document stores wins
    assert "MODEL AT CHANCE" in reinit.reinit_heatmap(stored)._suptitle.get_text()


def test_the_reinit_scale_is_diverging_and_centred_at_zero():
    document = reinit_document()
    assert min(min(row["relative_drop"]) for row in document["rows"]) < 0
    image = reinit.reinit_heatmap(document).axes[0].images[0]
    assert image.norm.vcenter == 0 and image.norm.vmin < 0 and image.norm.vmax == 1
    low, middle = image.cmap(image.norm(image.norm.vmin)), image.cmap(image.norm(0.0))
    assert low[2] > low[0] and min(middle[:3]) > 0.9  # a helping reset is blue, no change is pale


def test_the_spectra_heatmaps_show_alphas_real_range(demo):
    ((_, fig),) = spectra.spectra_heatmaps(demo, {})
    alphas = [layer["alpha"] for document in (_spectra(e) for e in EPOCHS) for layer in document["layers"]]
    image = fig.axes[0].images[0]
    assert image.norm.vmax == pytest.approx(max(alphas)) and image.norm.vmin == pytest.approx(min(alphas))


# -- the family's figures (compare_runs) ------------------------------------------------------------------
def _family_run(root: Path, noise: float, seed: int) -> None:
    sub = Path("digits", *(["noise_100"] if noise else []), "lenet", str(seed))
    record = _run_record(epochs=15) | {"args": {"arch": "lenet", "dataset": "digits", "seed": seed, "noise": noise}}
    record["test"]["top1"] = 97.0 - 80 * noise + seed
    write_document(root / "models" / sub / "run.json", record)
    for epoch in (0, 5, 15):
        document = _projections(epoch)
        document["seed"] = seed
        write_document(root / "results" / sub / f"projections_lenet_epoch{epoch:04d}.json", document)
        write_document(root / "results" / sub / f"dse_lenet_epoch{epoch:04d}.json", _dse(epoch) | {"seed": seed})
    write_document(root / "results" / sub / "reinit_lenet_epoch0015.json", reinit_document() | {"seed": seed})


@pytest.fixture(scope="module")
def family_figures(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("family")
    for noise in (0.0, 1.0):
        for seed in (0, 1):
            _family_run(root, noise, seed)
    family = build_family([root])
    bias, criticality = stats.bias_table(family), stats.criticality_table(family)
    points = stats.bias_criticality_points(family)
    correlations = {"all": stats.spearman(points, resamples=50)}
    with style():
        return dict(compare_runs.draw(family, bias, criticality, points, correlations))


def test_the_family_figures_are_readable(family_figures):
    assert {"bias_heatmap", "bias_dynamics", "bias_vs_criticality", "dse_curves", "accuracy_curves",
            "reinit_heatmaps"} <= set(family_figures)
    found = [fault for name, fig in family_figures.items() for fault in faults(name, fig)]
    assert not found, "\n".join(found)


def test_the_accuracy_curves_show_every_epoch_and_the_final_test(family_figures):
    ax = family_figures["accuracy_curves"].axes[0]
    curves = [line for line in ax.lines if len(line.get_xdata()) > 1]
    assert curves and all(list(line.get_xdata()) == list(range(1, 16)) for line in curves)
    low, high = ax.get_xlim()
    assert low < 1 and high > 15


def test_three_levels_of_reinit_heatmaps_wrap_instead_of_widening():
    from plotting.family import reinit_heatmaps

    grid = np.array([[0.1 * (i % 7) - 0.05 for i in range(len(LAYERS))]] * 7)
    grids = {level: (["0", "1", "2", "3", "4", "5", "rand"], LAYERS, grid, 2)
             for level in ("noise=0", "noise=1", "pixel shuffle")}  # the demo family's levels: 2651 px before
    with style():
        fig = reinit_heatmaps(grids, title="lenet on digits, 6 runs by noise")
    assert not faults("reinit_heatmaps", fig)


def test_the_family_reinit_scale_is_centred_at_zero(family_figures):
    image = family_figures["reinit_heatmaps"].axes[0].images[0]
    assert image.norm.vcenter == 0 and image.norm.vmin < 0


# -- the ranking's figures (rank_measures) ---------------------------------------------------------------
@pytest.fixture(scope="module")
def ranking_figures(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("measures")
    for noise in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
        for seed in (0, 1):
            sub = Path("digits", *([f"noise_{int(noise * 100)}"] if noise else []), "lenet", str(seed))
            top1 = 97.0 - 86 * noise - 0.3 * seed
            record = _run_record(epochs=5) | {"args": {"arch": "lenet", "dataset": "digits", "seed": seed,
                                                       "noise": noise}, "seed": seed}
            record["test"]["top1"] = top1
            record["data"] = {"num_classes": 10, "sizes": {"train": 1347, "val": 0, "test": 450}}
            for row in record["epochs"]:
                row["eval_split"], row["val_top1"] = "test", top1
            write_document(root / "models" / sub / "run.json", record)
            for epoch in (0, 5):
                document = _projections(epoch) | {"seed": seed}
                write_document(root / "results" / sub / f"projections_lenet_epoch{epoch:04d}.json", document)
                write_document(root / "results" / sub / f"dse_lenet_epoch{epoch:04d}.json",
                               _dse(epoch) | {"seed": seed, "dsmi_y": top1 / 50 if epoch else 0.1})
                net = {"alpha": 10 - top1 / 20 + 0.1 * seed, "alpha_weighted": 1.0 + 0.01 * top1 * (seed - 0.5),
                       "rand_distance": 0.1 + 0.001 * top1, "n_layers": len(LAYERS)}
                write_document(root / "results" / sub / f"spectra_lenet_epoch{epoch:04d}.json",
                               _spectra(epoch) | {"seed": seed, "net": net})
    table = load_measures([root])
    # Two seeds per setting: 4 pairs an environment, judged at an effective sample size of 3.
    result = ranked(table, resamples=50, weighting=Weighting(min_ess=3))
    with style():
        return dict(rank_measures.draw(table, result.ranking, 4, result.environments))


def test_the_ranking_figures_are_readable_and_the_forest_says_what_it_shows(ranking_figures):
    found = [fault for name, fig in ranking_figures.items() for fault in faults(name, fig)]
    assert not found, "\n".join(found)
    title = ranking_figures["tau_forest"]._suptitle.get_text()
    assert title.startswith("Kendall's tau of each measure with test top-1") and "across 12 runs" in title
    assert "95% bootstrap CI" in title
    environments = ranking_figures["environments_test_top1"]
    assert environments._suptitle.get_text().startswith("Sign-errors of the judged environments against test top-1")
    assert [ax.get_title() for ax in environments.axes if ax.get_visible()] == ["noise (15 judged)"]


# -- natural layer order ------------------------------------------------------------------------------------
def test_natural_order_puts_features_2_before_features_10_and_keeps_forward_order():
    assert sorted(["features.10", "features.2", "classifier.1"], key=natural_key) == \
        ["classifier.1", "features.2", "features.10"]
    resnet = ["conv1", "layer1.0.conv1", "layer1.0.conv2", "layer2.0.conv1", "fc"]
    assert forward_order([resnet + ["net"], [""] + resnet]) == ["", *resnet, "net"]  # not alphabetical: fc last
    assert forward_order([["features.0", "features.3", "features.6"],
                          ["features.0", "features.2", "features.4", "features.6"]]) == \
        ["features.0", "features.2", "features.3", "features.4", "features.6"]


def test_the_tidy_table_orders_layers_naturally(family_figures, tmp_path):
    for seed in (0, 1):
        _family_run(tmp_path, 0.0, seed)
    table = schema.load_table([tmp_path])
    mass = table[table.metric == "mass"]
    assert list(mass.pivot_table(index="layer", columns="epoch", values="value").index) == LAYERS + ["net"]
    assert list(mass.groupby("layer").value.mean().index) == LAYERS + ["net"]


def test_the_demo_report_names_a_model_at_chance_before_its_layer_findings(tmp_path):
    from plotting.report import report_markdown

    def report(run):
        return report_markdown(run, report_dir=tmp_path, figures=[], run_dir=tmp_path, results_dir=tmp_path,
                               plots_dir=tmp_path, timings={})

    text = report(demo_run(reinit_document(top1=11.0)))
    assert "**The model is at chance**" in text and "**Critical layers** of an untrained model" in text
    assert text.index("at chance") < text.index("Critical layers")
    assert "at chance" not in report(demo_run()) and "**Critical layers** (" in report(demo_run())
