"""`python -m dask_platform` is the `dask-platform` command."""

from dask_platform.cli import main

main()
