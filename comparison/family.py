"""A family: its runs, the levels of the factors that vary (seeds are replicates), the tidy table,
one line for each run that differs from the others (failed, missing an analysis, other epochs), and
the lines that name the runs that did not reach their training criterion or are at chance."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from analyses.registry import declarations
from comparison import outcomes
from schema.runs import PIXEL_SHUFFLE, Run, find_runs, relative
from schema.table import level_of, table_of, varying
from utils.errors import UserError

FINISHED = ("finished", "plateau")


@dataclass
class Family:
    runs: list[Run]
    table: object  # pandas DataFrame (schema.table)
    by: list[str]
    levels: list[str]  # in the order of their factor values (pixel shuffle after every noise level)
    notes: list[str] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)  # analysed layers, forward order
    status: list[str] = field(default_factory=list)  # runs without their criterion, settings at chance
    at_chance: list[outcomes.AtChance] = field(default_factory=list)

    @property
    def description(self) -> str:
        """``lenet on digits`` (or the architectures and datasets there are)."""
        arches = sorted({str(run.arch) for run in self.runs})
        datasets = sorted({str(run.dataset) for run in self.runs})
        return f"{', '.join(arches)} on {', '.join(datasets)}"

    def seeds(self, level: str) -> int:
        return int(self.table[self.table.level == level].run.nunique())


def _order(run: Run, by: list[str]) -> tuple:
    keys = []
    for key in by:
        value = run.factors().get(key)
        if key == "noise" and value is not None and float(value) == PIXEL_SHUFFLE:
            keys.append((1, 0.0, ""))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            keys.append((0, float(value), ""))
        else:
            keys.append((2, 0.0, str(value)))
    return tuple(keys)


def finished(runs: list[Run], manifests: list[dict], notes: list[str]) -> list[Run]:
    """The runs to compare; failed, stopped or unfinished ones (and sweep members that never ran)
    are one note each."""
    for manifest in manifests:
        for member in manifest.get("members") or []:
            if member.get("status") != "done":
                error = f": {member['error']}" if member.get("error") else ""
                notes.append(f"member {member['id']} of sweep {manifest.get('name')} is {member.get('status')}{error}; "
                             "left out")
    kept = []
    for run in runs:
        state = ((run.record or {}).get("status") or {}).get("state")
        if run.record is not None and state not in FINISHED:
            notes.append(f"run {relative(run.folder)} ended {state}; left out")
        else:
            kept.append(run)
    return kept


def _differences(runs: list[Run], notes: list[str]) -> None:
    compared = [(found.name, found.compared_as) for found in declarations() if found.compared_as]
    for kind, what in compared:
        having = [run for run in runs if run.documents.get(kind) or run.documents.get(f"{kind}_summary")]
        if having and len(having) < len(runs):
            for run in runs:
                if run not in having:
                    notes.append(f"run {relative(run.folder)} has no {kind} results; compared without it for {what}")
    epochs = {relative(run.folder): tuple(d["epoch"] for d in run.of_kind("projections") if d.get("epoch") is not None)
              for run in runs if run.documents.get("projections")}
    usual = Counter(epochs.values()).most_common(1)[0][0] if epochs else ()
    for folder, found in epochs.items():
        if found != usual:
            notes.append(f"run {folder} has snapshots at epochs {list(found)}, most runs at {list(usual)}; "
                         "each is compared at its own last epoch")


def final_top1(table, run: Run) -> float | None:
    """The run's test top-1 at its last epoch with one, from the tidy table (None without one)."""
    rows = table[(table.run == relative(run.folder)) & (table.metric == "test_top1") & (table.layer == "")]
    return None if rows.empty else float(rows.sort_values("epoch").value.iloc[-1])


def run_status(runs: list[Run], table, by: list[str]) -> tuple[list[str], list[outcomes.AtChance]]:
    """The line naming the runs that reached their cap without their criterion, and the runs at chance
    (with one line per setting)."""
    lines = []
    capped = [run for run in runs if outcomes.unconverged(run.record)]
    if capped:
        lines.append(outcomes.unconverged_line([relative(run.folder) for run in capped],
                                               [run.record for run in capped], what="compared as they are"))
    found = [outcomes.at_chance(relative(run.folder), level_of(run, by), record=run.record, top1=final_top1(table, run),
                                noise=run.factors().get("noise")) for run in runs]
    found = [item for item in found if item is not None]
    return lines + outcomes.chance_lines(found), found


def build_family(inputs, *, by: list[str] | None = None) -> Family:
    """The family of the runs under ``inputs`` (sweep, run or results folders)."""
    found, manifests = find_runs(inputs)
    notes: list[str] = []
    runs = finished(found, manifests, notes)
    if not runs:
        raise UserError(f"no finished runs found in {', '.join(map(str, inputs))}; give sweep, run or results folders")
    factors = varying(runs)
    if by:
        fixed = [key for key in by if key not in factors]
        if fixed:
            raise UserError(f"--by {' '.join(fixed)}: does not vary across the {len(runs)} runs; "
                            f"the varying factors are: {', '.join(factors) or 'none'}")
    by = factors if by is None else list(by)
    runs.sort(key=lambda run: (_order(run, by), str(run.seed), str(run.folder)))
    _differences(runs, notes)
    levels = list(dict.fromkeys(level_of(run, by) for run in runs))
    table = table_of(runs, by)
    projections = table[(table.metric == "mass") & (table.layer != "net")]
    status, at_chance = run_status(runs, table, by)
    return Family(runs, table, by, levels, notes, list(dict.fromkeys(projections.layer)), status, at_chance)
