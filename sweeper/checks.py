"""Every member is checked with train.py's own parser and checks before anything starts.

A bad value or an incompatible combination in any member is one :class:`UserError` naming the
member and the problem; nothing has been written by then.
"""
from __future__ import annotations

import argparse
from collections.abc import Iterable

import datasets
import models
from datasets.sources import check_files
from datasets.transforms import UPSCALE_SIZE
from sweeper.grid import Member
from training.arguments import data_options, get_args_parser, validate_args
from training.performance import SpeedOptions
from utils.devices import resolve_device
from utils.errors import UserError


class _RaisingParser(argparse.ArgumentParser):
    """train.py's parser, raising :class:`UserError` instead of printing the usage and exiting."""

    def error(self, message: str):
        raise UserError(message)


def train_parser() -> argparse.ArgumentParser:
    parser = get_args_parser()
    parser.__class__ = _RaisingParser
    return parser


def parse_member(member: Member, parser: argparse.ArgumentParser) -> argparse.Namespace:
    """``member``'s train.py arguments, checked as train.py checks them before any work."""
    try:
        args = parser.parse_args(list(member.argv))
        validate_args(args)
        data_options(args).validate()
        spec = datasets.get_dataset_spec(args.dataset) if args.dataset else None
        if args.arch is None or spec is None:
            raise UserError("a sweep needs --arch and --dataset")
        if not 0 <= args.subsample_classes <= spec.num_classes:
            raise UserError(f"--subsample-classes {args.subsample_classes} is out of range for {args.dataset} "
                            f"({spec.num_classes} classes)")
        check_files(args.dataset, args.data_path, spec.required_files, download=args.download)
        SpeedOptions(args.channels_last, args.amp, args.compile).validate(resolve_device(cuda=args.cuda,
                                                                                         device=args.device))
    except UserError as err:
        raise UserError(f"member {member.id}: {err}") from err
    return args


def check_models(members: Iterable[Member], parsed: dict[str, argparse.Namespace]) -> None:
    """Each distinct model is built once and runs on its input size (e.g. AlexNet needs --upscale)."""
    checked = set()
    for member in members:
        args = parsed[member.id]
        spec = datasets.get_dataset_spec(args.dataset)
        size = UPSCALE_SIZE if args.upscale or args.upscale_padding else spec.image_size
        options = models.model_options(vars(args))  # --depth/--width/--dropout
        shape = (args.arch, args.subsample_classes or spec.num_classes, spec.in_channels, size, args.pretrained,
                 tuple(sorted(options.items())))
        if shape in checked:
            continue
        try:
            models.get_model(shape[0], shape[1], shape[2], args.pretrained, image_size=size, download=args.download,
                             options=options)
        except UserError as err:
            raise UserError(f"member {member.id}: {err}") from err
        checked.add(shape)


def check_members(members: list[Member]) -> dict[str, argparse.Namespace]:
    """The parsed train.py arguments of every member, by member id (see the module docstring)."""
    parser = train_parser()
    parsed = {member.id: parse_member(member, parser) for member in members}
    check_models(members, parsed)
    return parsed
