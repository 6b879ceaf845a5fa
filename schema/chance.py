"""The chance verdict of the trained model a result document reads (``metrics.chance``): the
``"chance"`` dict the document stores, else computed from the keys every reinit document has.

    from schema.chance import chance_of
    verdict = chance_of(schema.load("results/digits/lenet/0/reinit_lenet_epoch0015.json"))
    verdict is None or verdict.above_chance   # False: findings describe an untrained model
"""
from __future__ import annotations

from metrics.chance import ChanceVerdict, chance_verdict

_FIELDS = ("top1", "chance", "n_test", "p_value", "above_chance")


def chance_of(document: dict | None) -> ChanceVerdict | None:
    """The document's stored ``"chance"`` verdict, else one computed from ``top1_test``, ``test_samples``
    and ``num_classes`` (or ``chance_top1``); None when the document does not say enough (the
    reference tool's files, documents of an untrained-by-design subject without a test top-1)."""
    if not document:
        return None
    stored = document.get("chance")
    if isinstance(stored, dict) and set(_FIELDS) <= set(stored):
        return ChanceVerdict(**{key: stored[key] for key in _FIELDS})
    top1, n_test = document.get("top1_test"), document.get("test_samples")
    classes = document.get("num_classes")
    if classes is None and document.get("chance_top1"):
        classes = round(100.0 / document["chance_top1"])
    if top1 is None or not n_test or not classes or classes < 2:
        return None
    return chance_verdict(float(top1), n_test=int(n_test), num_classes=int(classes))
