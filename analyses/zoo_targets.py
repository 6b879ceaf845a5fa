"""The targets of zoo models in rank_measures.py: ImageNet-1K acc@1 and acc@5 of torchvision's weights
(their metadata), and ``--accuracy file.csv`` (columns ``model, top1[, top5]``), which overrides or
supplies them."""
from __future__ import annotations

import csv
import math
import os

from analyses.zoo import TORCHVISION, ZooEntry
from utils.errors import UserError


def torchvision_targets(entries: list[ZooEntry]) -> dict[str, dict[str, float]]:
    """``{name: {"test_top1", "test_top5"}}``: ImageNet-1K acc@1 and acc@5 of torchvision's weights."""
    import torchvision

    found = {}
    for entry in entries:
        if entry.source != TORCHVISION:
            continue
        metrics = (torchvision.models.get_model_weights(entry.arch).DEFAULT.meta.get("_metrics") or {})
        imagenet = metrics.get("ImageNet-1K") or {}
        values = {"test_top1": imagenet.get("acc@1"), "test_top5": imagenet.get("acc@5")}
        found[entry.name] = {key: float(value) for key, value in values.items() if value is not None}
    return found


def _number(text: str, *, path, line: int, column: str) -> float | None:
    if text is None or not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise UserError(f"--accuracy {path}, line {line}: {column} {text!r} is not a number; give accuracies in %")
    return value


def read_accuracy(path: str | os.PathLike) -> dict[str, dict[str, float]]:
    """``--accuracy``: ``{model: {"test_top1"[, "test_top5"]}}`` from a CSV with columns ``model, top1[, top5]``."""
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
            header = [name.strip().lower() for name in (rows[0].keys() if rows else [])]
    except OSError as err:
        raise UserError(f"cannot read --accuracy {path}: {err.strerror}; check the path") from err
    except (csv.Error, UnicodeDecodeError) as err:
        raise UserError(f"--accuracy {path} is not a CSV file ({err}); give columns model, top1[, top5]") from err
    missing = [column for column in ("model", "top1") if column not in header]
    if missing:
        raise UserError(f"--accuracy {path} lacks the column(s) {', '.join(missing)} (it has: "
                        f"{', '.join(header) or 'no rows'}); give columns model, top1[, top5]")
    found: dict[str, dict[str, float]] = {}
    for line, row in enumerate(rows, start=2):
        row = {key.strip().lower(): value for key, value in row.items() if key is not None}
        model = (row.get("model") or "").strip()
        if not model:
            raise UserError(f"--accuracy {path}, line {line}: no model name; fill the model column")
        if model in found:
            raise UserError(f"--accuracy {path}: model {model!r} appears twice; keep one row per model")
        values = {"test_top1": _number(row.get("top1"), path=path, line=line, column="top1"),
                  "test_top5": _number(row.get("top5"), path=path, line=line, column="top5")}
        found[model] = {key: value for key, value in values.items() if value is not None}
    return found
