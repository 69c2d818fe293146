"""A real single-node Kubernetes on this machine, from Debian's packages, for tests and trials
(`scripts/dev node up|down|status`, which runs `python -m testbed.node`): config (what it is made of, as data),
lifecycle (starting, stopping and undoing), images (pause, base and platform images without a registry), dns (the
test DNS stand-in)."""
