"""Helpers of the tests, apart from the tests (the real parts they start are the test bed, testbed/): the
repository under test and its rendered objects (repo), a scratch copy of it (scratch), a model of Argo CD's sync
(argo), the CRDs the test servers serve (crds), and the session's single-node cluster (node)."""
