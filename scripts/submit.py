#!/usr/bin/env python3
"""Run an ML job of jobs/ on Dask; the same as `dask-platform submit` (installed by scripts/dev into .venv).

.venv/bin/python scripts/submit.py --list
.venv/bin/python scripts/submit.py rossmann                          # embedded LocalCluster
.venv/bin/python scripts/submit.py rossmann --scheduler tcp://HOST:8786
.venv/bin/python scripts/submit.py rossmann --cluster aws-example    # port-forward to its scheduler
.venv/bin/python scripts/submit.py rossmann --help                   # the job's own options
"""

from dask_platform.cli import submit_group

if __name__ == "__main__":
    submit_group(prog_name="scripts/submit.py")
