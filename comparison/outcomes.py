"""How each run of a family or a ranking ended, in words: the runs that did not reach their training
criterion (run.json's ``stopping``) and the models whose test top-1 is not above chance
(``metrics.chance``). compare_runs.py and rank_measures.py name both in their reports.
"""
from __future__ import annotations

from dataclasses import dataclass

from schema import finite
from schema.chance import ChanceVerdict, chance_verdict

CAP_REACHED = "cap reached"
RANDOM_LABELS = 1.0  # --noise 1.0: every training label is drawn at random


def stopping(record: dict | None) -> dict | None:
    """run.json's ``stopping`` (None for a run without a criterion, or without run.json)."""
    found = (record or {}).get("stopping")
    return found if isinstance(found, dict) else None


def unconverged(record: dict | None) -> bool:
    """Whether the run had a training criterion and reached its epoch cap without meeting it."""
    return (stopping(record) or {}).get("outcome") == CAP_REACHED


def criterion_text(found: dict) -> str:
    """``training cross-entropy <= 0.01`` / ``training top-1 >= 99%``, from ``stopping.criterion``."""
    criterion = found.get("criterion") or {}
    if "train_loss" in criterion:
        return f"training cross-entropy <= {criterion['train_loss']:g}"
    if "train_top1" in criterion:
        return f"training top-1 >= {criterion['train_top1']:g}%"
    return "its training criterion"


def unconverged_line(names: list[str], records: list[dict], *, what: str) -> str:
    """One line naming the runs that reached their cap without their criterion, and ``what`` follows."""
    found = stopping(records[0]) or {}
    caps = {(stopping(record) or {}).get("epoch") for record in records}
    epoch = f" within {caps.pop()} epochs" if len(caps) == 1 and None not in caps else ""
    shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
    return (f"{len(names)} run(s) did not reach {criterion_text(found)}{epoch} (cap reached): {shown}; {what}")


@dataclass(frozen=True)
class AtChance:
    """A model whose test top-1 is not above chance, and the setting it belongs to."""

    name: str
    group: str
    verdict: ChanceVerdict
    random_labels: bool  # trained on random labels: being at chance on the test set is expected


def test_size(record: dict | None) -> tuple[int | None, int | None]:
    """``(test examples, classes)`` from run.json's ``data`` (None where it does not say)."""
    data = (record or {}).get("data") or {}
    size, classes = (data.get("sizes") or {}).get("test"), data.get("num_classes")
    return (int(size) if finite(size) else None), (int(classes) if finite(classes) else None)


def at_chance(name: str, group: str, *, record: dict | None, top1, noise=None) -> AtChance | None:
    """The :class:`AtChance` of a run whose test top-1 is not significantly above chance, else None
    (also None when run.json lacks the test set's size or the number of classes)."""
    n_test, classes = test_size(record)
    if not finite(top1) or not 0.0 <= top1 <= 100.0 or n_test is None or classes is None or n_test < 1 \
            or classes < 2:
        return None
    verdict = chance_verdict(float(top1), n_test=n_test, num_classes=classes)
    if verdict.above_chance:
        return None
    random_labels = finite(noise) and float(noise) == RANDOM_LABELS
    return AtChance(name, group, verdict, random_labels)


def chance_lines(found: list[AtChance]) -> list[str]:
    """One line per setting with runs at chance: a random-label setting is expected there; any other
    is named as describing untrained models."""
    lines = []
    for group in dict.fromkeys(item.group for item in found):
        members = [item for item in found if item.group == group]
        verdicts = "; ".join(f"{item.name}: {item.verdict.describe()}" for item in members[:3])
        more = f"; and {len(members) - 3} more" if len(members) > 3 else ""
        if all(item.random_labels for item in members):
            lines.append(f"the {group} runs are at chance on the test set, as models fitting random labels are "
                         f"({verdicts}{more})")
        else:
            lines.append(f"{len(members)} {group} run(s) are not above chance on the test set: their measures "
                         f"describe untrained models, not findings ({verdicts}{more})")
    return lines
