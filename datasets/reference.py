"""The reference tool's data conventions, for files it wrote (and behind flags, for anyone).

Its ``data_loader.py`` normalizes with constants of its own per dataset and input view (they
differ from the true statistics, e.g. CIFAR-10 std (0.2023, 0.1994, 0.2010) against (0.2470,
0.2435, 0.2616)), and its class subset keeps the classes in the order it drew them (the first k
without ``--shuffle``). A network trained by it only gives its accuracy on inputs made its way.
"""
from __future__ import annotations

import numpy as np

from utils.errors import UserError

NORMALIZATIONS = ("dataset", "reference")  # our statistics of the view, or the reference's constants
CLASS_ORDERS = ("sorted", "reference")  # our seeded draw kept sorted, or the reference's draw in drawn order
SNAPSHOT = "snapshot"  # the CLI choice: what the file was trained with (a reference file: the reference's)

NATIVE, UPSCALE, UPSCALE_PADDING = "native", "upscale", "upscale_padding"

# (mean, std) by dataset and view, as in the reference's data_loader.py.
REFERENCE_STATISTICS: dict[str, dict[str, tuple[tuple[float, ...], tuple[float, ...]]]] = {
    "cifar10": {
        NATIVE: ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
        UPSCALE: ((0.4914, 0.4822, 0.4465), (0.1953, 0.1925, 0.1942)),
        UPSCALE_PADDING: ((0.1229, 0.1206, 0.1117), (0.2367, 0.2323, 0.2190)),
    },
    "cifar100": {
        NATIVE: ((0.5071, 0.4865, 0.4409), (0.2009, 0.1984, 0.2023)),
        UPSCALE: ((0.5071, 0.4865, 0.4409), (0.1942, 0.1918, 0.1958)),
        UPSCALE_PADDING: ((0.1268, 0.1217, 0.1103), (0.2435, 0.2343, 0.2177)),
    },
    "mnist": {NATIVE: ((0.1307,), (0.3015,))},
    "imagenet": {NATIVE: ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))},
}


def view_kind(*, upscale: bool, upscale_padding: bool) -> str:
    return UPSCALE if upscale else UPSCALE_PADDING if upscale_padding else NATIVE


def reference_statistics(dataset: str, view: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The reference's (mean, std) for ``dataset`` seen through ``view``."""
    known = REFERENCE_STATISTICS.get(dataset, {})
    if view not in known:
        has = ", ".join(f"{name} ({'/'.join(views)})" for name, views in REFERENCE_STATISTICS.items())
        shown = dataset if view == NATIVE else f"{dataset} with --{view.replace('_', '-')}"
        raise UserError(f"the reference tool has no normalization for {shown} (it has {has}); "
                        "use --normalization dataset")
    return known[view]


def reference_knows(dataset: str, *, upscale: bool = False, upscale_padding: bool = False) -> bool:
    """Whether the reference tool could have trained on ``dataset`` in this view (a plain weight file
    for another dataset, e.g. digits, is not the reference's, and is read with our conventions)."""
    return view_kind(upscale=upscale, upscale_padding=upscale_padding) in REFERENCE_STATISTICS.get(dataset, {})


def reference_classes(num_classes: int, k: int, *, seed: int | None, shuffle: bool) -> np.ndarray:
    """The reference's subset: with ``shuffle`` the class list shuffled by ``np.random.seed(seed)``
    and cut at ``k``, else the first ``k``; label ``i`` is the ``i``-th class of the subset."""
    if k == 0 or k == num_classes:
        return np.arange(num_classes)
    if not shuffle:
        return np.arange(k)
    return np.random.RandomState(seed).permutation(num_classes)[:k]


LABELS = {"normalization": ("normalization constants", "dataset"), "class-order": ("class subset and order", "sorted")}


def resolve(option: str, choice: str, *, reference_file: bool, stored: str | None, what: str) -> str:
    """How ``what`` is read for ``option`` (``normalization`` or ``class-order``): ``choice`` unless it
    is ``snapshot``; then a reference-tool file gets the reference's convention (with a notice) and
    one of ours what it recorded (files from before the option: ours)."""
    from utils.notices import notice

    label, ours = LABELS[option]
    if choice != SNAPSHOT:
        return choice
    if reference_file:
        notice(f"reference-{option}", "%s has no header of this suite, so it is read as a reference-tool file "
               "with the reference's %s (--%s reference; pass --%s %s to use ours)", what, label, option, option, ours)
        return "reference"
    return stored or ours


def resolve_conventions(normalization: str, class_order: str, *, reference_file: bool, dataset: str,
                        upscale: bool, upscale_padding: bool, subsample_classes: int, stored: dict,
                        what: str) -> dict:
    """``{"normalization", "class_order"}`` that ``what`` is read with (see :func:`resolve`): a file
    without our header is the reference's only where the reference could have trained it
    (:func:`reference_knows`); ``stored`` is what one of ours recorded (``{}``: a new run or a
    reference file). The class order only matters with a class subset."""
    reference = reference_file and reference_knows(dataset, upscale=upscale, upscale_padding=upscale_padding)
    order = class_order if subsample_classes or class_order != SNAPSHOT else "sorted"
    return {"normalization": resolve("normalization", normalization, reference_file=reference,
                                     stored=stored.get("normalization"), what=what),
            "class_order": resolve("class-order", order, reference_file=reference, stored=stored.get("class_order"),
                                   what=what)}


def add_convention_arguments(parser, *, shuffle_flag: bool = False) -> None:
    """``--normalization`` and ``--class-order`` (and, for analysis CLIs, the ``--shuffle`` the
    reference's class draw depends on)."""
    parser.add_argument("--normalization", choices=(SNAPSHOT, *NORMALIZATIONS), default=SNAPSHOT, help="Input normalization: snapshot = what the file was trained with (a reference-tool file: the reference's constants), dataset = this suite's per-view statistics, reference = the reference tool's constants for the dataset and view [default = snapshot].")
    parser.add_argument("--class-order", choices=(SNAPSHOT, *CLASS_ORDERS), default=SNAPSHOT, help="With --subsample-classes: snapshot = what the file was trained with (a reference-tool file: the reference's), sorted = this suite's seeded draw with labels in class order, reference = the reference's draw (random with --shuffle, else the first k) with labels in drawn order [default = snapshot].")
    if shuffle_flag:
        parser.add_argument("--shuffle", action="store_true", help="The run was trained with --shuffle (plain reference files: its class subset was drawn at random, else the first k, and its validation split shuffled) [default = the snapshot's, else off].")
