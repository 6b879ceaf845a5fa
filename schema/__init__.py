"""The one owner of the result schema: every result file is written and read through here.

- :mod:`schema.documents`: ``SCHEMA_VERSION``, the header every file carries, the atomic writer.
- :mod:`schema.load`: :func:`load` returns any document (ours, train.py's ``run.json``, the
  reference tool's projection and reinit files) normalized to ours; :func:`collect` reads folders.
- :mod:`schema.summaries`: the one builder of the per-run summaries (values per epoch, layers x
  epochs matrices).

The package is called ``schema`` rather than ``results`` because ``./results`` is the default
output folder of every CLI (the reference tool's), and outputs must not land in a source package.
"""
from schema.documents import SCHEMA_VERSION, finite_or_none, header, read_json, write
from schema.load import RESULT_KINDS, collect, identify, load, matching, normalize
from schema.summaries import SummarySpec, layers_by_epoch, summarize

__all__ = [
    "RESULT_KINDS", "SCHEMA_VERSION", "SummarySpec", "collect", "finite_or_none", "header", "identify",
    "layers_by_epoch", "load", "matching", "normalize", "read_json", "summarize", "write",
]
