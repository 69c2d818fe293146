"""Test harness, apart from the tests: real Dask processes (daskproc), the rendered cluster booted as local
processes (boot), a real kube-apiserver + etcd (envtest), and a scratch copy of the repository (scratch)."""
