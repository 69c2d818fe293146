"""A real single-node Kubernetes on this machine, from Debian's packages, for tests and trials
(`dask-platform node up|down|status`): config (what it is made of, as data), lifecycle (starting, stopping and
undoing), images (pause, base and platform images without a registry), dns (the test DNS stand-in)."""
