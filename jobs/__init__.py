"""ML jobs that run on a Dask cluster (embedded or deployed). Runs on the workers too: imports nothing from
scripts/ and no Kubernetes or helm library. The job registry is jobs.registry.JOBS."""
