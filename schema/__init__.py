"""The one owner of the result schema: every result file is written and read through here.

- :mod:`schema.documents`: ``SCHEMA_VERSION``, the header every file carries, the atomic writer.
- :mod:`schema.load`: :func:`load` returns any document (ours, train.py's ``run.json``, the
  reference tool's projection and reinit files) normalized to ours; :func:`collect` reads folders.
- :mod:`schema.reference`: the reference tool's files both ways (read as ours; ours written as its,
  for ``--layout reference``).
- :mod:`schema.summaries`: the one builder of the per-run summaries (values per epoch, layers x
  epochs matrices).
- :mod:`schema.runs` and :mod:`schema.table`: the runs under some folders (run.json paired with its
  results) and :func:`load_table`, the tidy table of a family as a pandas DataFrame.

The package is called ``schema`` rather than ``results`` because ``./results`` is the default
output folder of every CLI (the reference tool's), and outputs must not land in a source package.
"""
from schema.documents import SCHEMA_VERSION, finite_or_none, header, read_json, write
from schema.load import collect, identify, load, matching, normalize, result_kinds
from schema.reference import reinit_layer_names, to_reference_projections, to_reference_reinit
from schema.runs import Run, find_runs
from schema.summaries import SummarySpec, layers_by_epoch, summarize
from schema.table import finite, layered_rows, load_table, table_metrics, table_of

__all__ = [
    "SCHEMA_VERSION", "SummarySpec", "collect", "finite", "finite_or_none", "header", "identify", "Run",
    "find_runs", "layered_rows", "layers_by_epoch", "load", "load_table", "matching", "normalize", "read_json",
    "reinit_layer_names", "result_kinds", "summarize", "table_metrics", "table_of", "to_reference_projections",
    "to_reference_reinit", "write",
]
