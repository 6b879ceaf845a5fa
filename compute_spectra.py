"""Weight-spectrum metrics per layer (WeightWatcher's) for snapshots, a run directory, a zoo model or a seed.

    python compute_spectra.py --load-from runs/digits/lenet/0
    python compute_spectra.py --load-from runs/digits/lenet/0/lenet_epoch0003.pt --conv-mode flatten

For every conv and linear layer: the eigenvalues of ``W^T W / N`` (conv layers as their kh*kw
slices pooled into one spectrum, or flattened with ``--conv-mode flatten``), the normalized matrix
entropy, stable rank, spectral norm, log norm, the power-law exponent ``alpha`` and
``alpha_weighted``, ``rand_distance`` (Jensen-Shannon distance to the spectrum of the shuffled
weights) and, given an initialization, the relative Frobenius distance and cosine from it
(definitions: ``metrics/spectral.py``). One ``spectra_<stem>.json`` per snapshot goes to
``<results>/<dataset>[_<k>]/[noise_<r>|pixel_shuffle]/<arch>/<seed>/``, plus ``spectra_summary.json``
(layers x epochs arrays) when a folder gets more than one snapshot. With ``--conv-mode flatten`` the
files are ``spectra_conv-flatten_<stem>.json`` and ``spectra_conv-flatten_summary.json``, so both
modes can live in one folder. The analysis: ``analyses/spectra.py``.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence

from analyses import runner
from analyses.arguments import analysis_parser
from analyses.sources import InitSettings, SourceSettings, print_missing_choice
from analyses.spectra import Spectra, SpectraSettings
from utils.cli import keeps_caller_logging, open_log_file, run_main, setup_logging
from utils.devices import device_from_args


def get_args_parser() -> argparse.ArgumentParser:
    # Each CLI's log file is named after its analysis (the reference tool's CLIs name theirs so too).
    return analysis_parser("Compute weight-spectrum metrics per layer.", log="spectra.log", title="spectra",
                           own=[SpectraSettings.add_arguments])


@keeps_caller_logging
def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    setup_logging(None)  # the console now; the log file, with these first lines, with the first result
    if not args.load_from and print_missing_choice(args):
        return 0
    sources = dataclasses.replace(SourceSettings.from_args(args), check_input=False)  # weights alone suffice
    runner.run([Spectra(SpectraSettings.from_args(args))], sources,
               init=InitSettings.from_args(args), outputs=runner.Outputs(args.results, args.log, open_log=open_log_file),
               device=device_from_args(args), args=vars(args))
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
