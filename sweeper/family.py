"""From a definition to checked plans, and from plans to the manifest's members.

A re-run of the same definition resumes; a different one is refused unless ``extend``, which adds
the new members and never touches the existing ones.
"""
from __future__ import annotations

from pathlib import Path

from sweeper.checks import check_members, parse_member, train_parser
from sweeper.grid import Definition, Member, flags_of, members
from sweeper.manifest import member_entry
from sweeper.plan import Plan, plan_members
from utils.errors import UserError


def plans_of(definition: Definition, sweep_dir: Path, *, nproc: int = 1) -> list[Plan]:
    """Every member of ``definition``, checked up front (a :class:`UserError` names the first bad one)."""
    found = members(definition, flags_of(train_parser()))
    return plan_members(sweep_dir, found, check_members(found), definition.analyses, nproc=nproc)


def plan_of_entry(sweep_dir: Path, entry: dict) -> Plan:
    """A member's plan rebuilt from its manifest entry (a SLURM job, ``--resume``)."""
    member = Member(entry["id"], entry["values"], tuple(entry["flags"]), entry["extra"])
    parsed = {member.id: parse_member(member, train_parser())}
    return plan_members(sweep_dir, [member], parsed, tuple(entry["analyses"]), nproc=entry.get("nproc", 1))[0]


def reconcile(manifest: dict, definition: Definition, plans: list[Plan], sweep_dir: Path, *, extend: bool) -> None:
    """Bring the manifest's members and grids up to ``definition`` (see the module docstring)."""
    known = {entry["id"]: entry for entry in manifest["members"]}
    grid = definition.record()
    if grid not in manifest["grids"]:
        if not extend:
            raise UserError(f"{sweep_dir} holds a sweep of another grid ({manifest['grids'][-1]}); give the same "
                            "flags to resume it, --extend to add members, or another --name")
        manifest["grids"].append(grid)
    runs = {entry["folders"]["models"]: entry["id"] for entry in manifest["members"]}
    for plan in plans:
        entry = member_entry(plan, sweep_dir)
        if plan.member.id in known:
            if known[plan.member.id]["flags"] != entry["flags"]:
                raise UserError(f"member {plan.member.id} exists with other flags ({' '.join(known[plan.member.id]['flags'])}); "
                                "--extend never changes an existing member: use another --name")
            continue
        if entry["folders"]["models"] in runs:
            raise UserError(f"member {plan.member.id} would write into the run folder of member "
                            f"{runs[entry['folders']['models']]}; use another --name")
        manifest["members"].append(entry)
