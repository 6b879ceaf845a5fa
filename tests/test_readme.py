"""Every command in the README parses, and every one that needs no dataset files runs as written."""
from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHELL_VALUES = {"$seed": "1", "$noise": "0.2"}  # the README's loop variables
NEEDS_FILES_OR_GPU = ("--data-path", "--cuda", "--pretrained", "imagenet", "cifar10", "/path/to")
# The README's family is 12 members of 30 epochs, and compare_runs.py reads it: tests/test_sweep.py and
# tests/test_compare.py run tiny ones.
LONG_RUNNING = ("sweep.py", "compare_runs.py")


def readme_commands() -> list[list[str]]:
    """``[script, *args]`` for each ``python <cli>.py`` / ``torchrun ... <cli>.py`` line of a bash block."""
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if not words or "..." in words or words[0] not in ("python", "torchrun"):
                continue
            scripts = [i for i, w in enumerate(words) if w.endswith(".py") and (ROOT / w).is_file()]
            if scripts:
                commands.append([SHELL_VALUES.get(w, w) for w in words[scripts[0]:]])
    return commands


def _main(script: str):
    return importlib.import_module(Path(script).stem)


def test_the_readme_has_the_commands_we_check():
    scripts = {command[0] for command in readme_commands()}
    assert {"train.py", "compute_projections.py", "reinit_layers.py", "compute_dse.py", "compute_spectra.py",
            "plot_results.py"} <= scripts


@pytest.mark.parametrize("command", readme_commands(), ids=lambda c: " ".join(c)[:80])
def test_every_readme_command_parses(command):
    module = _main(command[0])
    parse = getattr(module, "parse_command", None) or module.get_args_parser().parse_args  # sweep.py: its grid too
    parse(command[1:])


@pytest.mark.slow
def test_offline_readme_commands_run_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    offline = [c for c in readme_commands() if not any(flag in word for word in c for flag in NEEDS_FILES_OR_GPU)
               and c[0] not in LONG_RUNNING]
    assert len(offline) >= 8
    for command in offline:
        assert _main(command[0]).main(command[1:]) == 0, " ".join(command)
    assert (tmp_path / "plots/digits/lenet/0/projection_heatmaps.png").is_file()
