"""Checks shared by several test modules (a test module never imports another)."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image
import numpy as np
import torch


def assert_real_png(path) -> None:
    """A drawn figure, not a blank or tiny one."""
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[0] > 200 and pixels.shape[1] > 300, path
    assert pixels[..., :3].std() > 0.05, f"{path} looks blank"


def probe_inputs(split, positions: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """The images (as the model sees them) and labels of ``split`` at ``positions``."""
    inputs = torch.cat([batch for batch, _ in split.batches(512, shuffle=False)])
    return inputs[torch.from_numpy(positions)], split.targets[positions]


def write_document(path, document: dict) -> None:
    """A hand-made result or run document, written where the readers look (parents made)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))


def document_header(kind: str, seed: int, epoch) -> dict:
    """The common header of a hand-made LeNet-on-digits document."""
    return {"schema_version": 1, "kind": kind, "arch": "lenet", "dataset": "digits", "seed": seed, "epoch": epoch,
            "args": {}}


def tiny_vit(*, seed: int = 0, image_size: int = 16, hidden_dim: int = 16, num_classes: int = 5,
             randomized: bool = True) -> torch.nn.Module:
    """A 2-layer torchvision VisionTransformer (patches of 8, 2 heads), seeded, in eval mode.

    ``randomized`` draws the head and the attention biases from N(0, 1): torchvision zeroes them, and a
    zero head makes every logit 0 (and every loss the same).
    """
    from torchvision.models import VisionTransformer

    torch.manual_seed(seed)
    model = VisionTransformer(image_size=image_size, patch_size=8, num_layers=2, num_heads=2, hidden_dim=hidden_dim,
                              mlp_dim=2 * hidden_dim, num_classes=num_classes).eval()
    if randomized:
        torch.nn.init.normal_(model.heads.head.weight)
        for module in model.modules():
            if isinstance(module, torch.nn.MultiheadAttention):
                torch.nn.init.normal_(module.in_proj_bias)
                torch.nn.init.normal_(module.out_proj.bias)
    return model


def unwrap_notices(text: str) -> str:
    """``text`` (captured log output) with every long notice on one line again: utils.notices wraps a
    notice at 120 characters, each continuation line starting with ``"notice:   "``."""
    return text.replace("\nnotice:   ", " ")
