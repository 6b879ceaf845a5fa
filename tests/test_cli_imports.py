"""A CLI's ``--help`` and its argument errors import no torchvision, and no torch where its parser can
be built without it (issue 42: ``--help`` took 5 s on 2 cores, 3.3 s of it torch and torchvision).

One Python process runs every CLI (as ``python <cli>.py ...`` would, through runpy), those that need
no torch first, and records after each whether torch and torchvision are imported.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLIS = sorted(path.stem for path in ROOT.glob("*.py"))
# The CLIs whose parser needs torch, and why. A registry whose entries are torch objects, or whose
# declarations live beside torch code, cannot be read without it.
NEEDS_TORCH = {
    "train": "its flags come from the models registry (nn.Module builders register there), torch.optim's "
             "optimizers and the analyses registry (the analyzers' flags)",
    "compute_projections": "its flags are its analysis's settings, defined in analyses/projections.py beside "
                           "the analysis, which imports torch",
    "compute_spectra": "as compute_projections (analyses/spectra.py)",
    "compute_dse": "as compute_projections (analyses/dse.py, analyses/hsic.py)",
    "compute_measures": "as compute_projections (analyses/field.py), and --measures lists the analyses registry's",
    "reinit_layers": "as compute_projections (analyses/reinit.py)",
    "sweep": "--analyses lists the analyses registry's, whose declarations live in the analysis modules",
    "rank_measures": "--analyses lists the zoo's analyses, from the analyses registry",
    "demo": "it runs the CLIs in-process and imports them all",
}
PROBE = """
import json, runpy, sys
clis, out = json.loads(sys.argv[1]), sys.argv[2]
found = {}
for cli in clis:
    for flag, name in (("--help", "help"), ("--no-such-flag", "error")):
        sys.argv = [cli + ".py", flag]
        try:
            runpy.run_path(cli + ".py", run_name="__main__")
            code = 0
        except SystemExit as exit:
            code = exit.code
        found[f"{cli} {name}"] = {"code": code, "torch": "torch" in sys.modules,
                                  "torchvision": "torchvision" in sys.modules}
with open(out, "w") as handle:
    json.dump(found, handle)
"""


def test_help_and_argument_errors_import_no_torchvision_and_no_torch_where_the_parser_needs_none(tmp_path):
    order = [cli for cli in CLIS if cli not in NEEDS_TORCH] + [cli for cli in CLIS if cli in NEEDS_TORCH]
    out = tmp_path / "found.json"
    subprocess.run([sys.executable, "-c", PROBE, json.dumps(order), str(out)], cwd=ROOT, check=True,
                   capture_output=True)
    found = json.loads(out.read_text())
    assert [key for key, seen in found.items() if seen["torchvision"]] == []
    assert [key for key, seen in found.items() if seen["torch"] and key.split()[0] not in NEEDS_TORCH] == []
    assert {key: seen["code"] for key, seen in found.items()} == {
        f"{cli} {name}": code for cli in order for name, code in (("help", 0), ("error", 2))}
    assert set(NEEDS_TORCH) <= set(CLIS)  # the list above names real CLIs only
