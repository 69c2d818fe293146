"""ML jobs that run on a Dask cluster (embedded or deployed). Runs on the workers too: imports nothing from
the tooling (dask_platform) and no Kubernetes or helm library. The job registry is jobs.registry.JOBS; the image
carries no job code, and jobs.shipping sends this package to the scheduler and the workers."""
