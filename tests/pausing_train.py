"""train.py as a process the SIGKILL tests stop at a chosen moment, through hooks the tests own.

    python tests/pausing_train.py --marker FILE (--pause-at-write NAME[#n] | --pause-in-epoch E) -- TRAIN ARGS

``--pause-at-write NAME#n``: the n-th write (default the first) of a file called NAME pauses after
its temp file is complete, before the rename (``os.replace``), once MARKER holds the temp file's
path. ``--pause-in-epoch E``: training pauses before step 6 of epoch E, once MARKER says so. Either
way the process then sleeps until the test kills it: the test waits for the marker, an event it
can observe, never for a guessed time.
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import train
import training.trainer
from utils.cli import run_main

STEPS_BEFORE_PAUSE = 5


def pause_at_write(spec: str, marker: Path, replace=os.replace, sleep=lambda: time.sleep(600)):
    """An ``os.replace`` that pauses on the write ``spec`` (``NAME`` or ``NAME#n``) names."""
    name, _, nth = spec.partition("#")
    seen = itertools.count(1)

    def paused_replace(source, target):
        if Path(target).name == name and next(seen) == int(nth or 1):
            marker.write_text(str(source))
            sleep()
        return replace(source, target)

    return paused_replace


def pause_in_epoch(epoch_to_pause: int, marker: Path, train_one_epoch):
    """A ``train_one_epoch`` that pauses before step ``STEPS_BEFORE_PAUSE + 1`` of one epoch."""
    def paused(model, batches, optimizer, *, epoch, **kwargs):
        if epoch == epoch_to_pause:
            stop, steps = kwargs["stop_signal"], itertools.count()

            def stop_signal():
                if next(steps) == STEPS_BEFORE_PAUSE:
                    marker.write_text(f"epoch {epoch}, step {STEPS_BEFORE_PAUSE + 1}")
                    time.sleep(600)
                return stop()

            kwargs["stop_signal"] = stop_signal
        return train_one_epoch(model, batches, optimizer, epoch=epoch, **kwargs)

    return paused


def main(argv: list[str]) -> int:
    split = argv.index("--")
    parser = argparse.ArgumentParser()
    parser.add_argument("--marker", type=Path, required=True)
    parser.add_argument("--pause-at-write")
    parser.add_argument("--pause-in-epoch", type=int)
    hooks = parser.parse_args(argv[:split])
    if hooks.pause_at_write:
        os.replace = pause_at_write(hooks.pause_at_write, hooks.marker)
    if hooks.pause_in_epoch is not None:
        training.trainer.train_one_epoch = pause_in_epoch(hooks.pause_in_epoch, hooks.marker,
                                                          training.trainer.train_one_epoch)
    return run_main(train.main, argv[split + 1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
