"""The test bed: the real parts the tests, the benchmarks and trials start on this machine. Not the product: it is
not in the wheel (pyproject.toml ships dask_platform and jobs only), and dask_platform imports nothing from it
(tests/test_lint.py). It is imported from the checkout's root, where pytest (pyproject.toml ``pythonpath``),
``python -m benchmarks.run`` and ``scripts/dev node`` run.

    node/     a real single-node Kubernetes from Debian's packages (`scripts/dev node up|status|down`)
    daskproc  Dask scheduler and worker processes started with the `dask` CLI
    boot      the Dask cluster a rendered manifest folder describes, booted as local processes
    envtest   a kube-apiserver + etcd on free loopback ports
    storage   object-storage servers: moto's S3 and Azure's Azurite
    registry  a small OCI registry with the distribution spec's token authentication
"""

from pathlib import Path

# The checkout the test bed runs from (its parent folder), where `python -m testbed...` finds it.
CHECKOUT = Path(__file__).resolve().parent.parent
