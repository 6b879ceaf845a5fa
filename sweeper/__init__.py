"""Families of runs (``sweep.py``): a grid over train.py flags, its members, their manifest, and
the engines that run them on this machine or on a SLURM cluster through submitit.

Named ``sweeper``, not ``sweeps``: ``./sweeps`` is sweep.py's default output folder (git-ignored).
"""
