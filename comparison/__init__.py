"""Comparing a family's members (``compare_runs.py``): its levels and the runs that differ
(``family.py``), the statistics across seeds (``stats.py``) and the report in words (``report.py``).
The figures are ``plotting/family.py``'s; the table and the reader are ``schema``'s."""
