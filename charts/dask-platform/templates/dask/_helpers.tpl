{{- /*
Helpers of the Dask scheduler and workers only: threads and memory from the container limits, the scheduler's HTTP
API, the workers' readiness and retirement commands and the scheduler's drain.
Helm reads every template of the chart together, so any template may include these. Helpers that need
the context take a dict (root: the caller's $; component: the app.kubernetes.io/component value), the others
the root context.
*/ -}}

{{- /*
dp.cpuThreads: whole threads a CPU quantity allows, at least 1 ("2" -> 2, "1500m" -> 1, "0.5" -> 1).
Takes the quantity string.
*/ -}}
{{- define "dp.cpuThreads" -}}
{{- $q := toString . -}}
{{- $n := 0 -}}
{{- if hasSuffix "m" $q -}}
{{- $n = div (trimSuffix "m" $q | atoi) 1000 -}}
{{- else -}}
{{- $n = floor (float64 $q) | int -}}
{{- end -}}
{{- max $n 1 -}}
{{- end }}

{{- /*
dp.memoryBytes: a Kubernetes memory quantity in bytes ("12Gi" -> 12884901888, "1500M" -> 1500000000).
Takes the quantity string.
*/ -}}
{{- define "dp.memoryBytes" -}}
{{- $q := toString . -}}
{{- $units := dict "" 1 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 -}}
{{- $m := regexFind "^[0-9]+(\\.[0-9]+)?" $q -}}
{{- $unit := trimPrefix $m $q -}}
{{- if or (not $m) (not (hasKey $units $unit)) -}}
{{- fail (printf "memory quantity %q: expected a number with an optional k, M, G, T, Ki, Mi, Gi or Ti suffix" $q) -}}
{{- end -}}
{{- mulf (float64 $m) (index $units $unit) | floor | int64 -}}
{{- end }}

{{- /*
dp.schedulerApi: the scheduler's HTTP API (dashboard port) as the pods reach it. Takes the root context.
*/ -}}
{{- define "dp.schedulerApi" -}}
{{- printf "http://%s:%d/api/v1" (include "dp.schedulerName" .) (int .Values.global.ports.dashboard) -}}
{{- end }}

{{- /*
dp.workerReadyCommand: the worker's readiness check: is this worker (DASK_WORKER_NAME) among the workers the
scheduler lists (GET /api/v1/get_workers)? Standard library only, so it costs a Python start-up, not an import
of distributed. Needs DASK_SCHEDULER_API and DASK_WORKER_NAME.
*/ -}}
{{- define "dp.workerReadyCommand" -}}
- python
- -c
- |
  import json, os, sys, urllib.request
  try:
      with urllib.request.urlopen(os.environ["DASK_SCHEDULER_API"] + "/get_workers", timeout=8) as response:
          names = {str(w["name"]) for w in json.load(response)["workers"]}
  except (OSError, ValueError) as exc:
      sys.exit(f"the scheduler's API does not answer: {exc}")
  sys.exit(0 if os.environ["DASK_WORKER_NAME"] in names else "not registered with the scheduler yet")
{{- end }}

{{- /*
dp.schedulerDrainCommand: the scheduler's preStop hook. When the scheduler is deleted with its workers (helm
uninstall, a namespace deleted) it waits, 10 s at most, until no worker is registered any more, so that the
workers' own preStop hooks can finish retiring against it instead of being cut off when it exits. Standard
library only; asks its own HTTP API (GET /api/v1/get_workers on the dashboard port).
*/ -}}
{{- define "dp.schedulerDrainCommand" -}}
- python
- -c
- |
  import json, time, urllib.request
  deadline = time.time() + 10
  while time.time() < deadline:
      try:
          with urllib.request.urlopen("http://127.0.0.1:{{ .Values.global.ports.dashboard }}/api/v1/get_workers", timeout=2) as r:
              if not json.load(r)["num_workers"]:
                  break
      except (OSError, ValueError):
          break
      time.sleep(0.5)
{{- end }}

{{- /*
dp.retireCommand: the worker's preStop hook. It asks the scheduler to retire this worker (its results move to
other workers, nothing is recomputed) and waits until that is done; only then does Kubernetes send SIGTERM.
When the scheduler is gone (helm uninstall deletes it with the workers; it is restarting) there is nothing to
retire to, and the worker stops by itself within a second: a plain TCP check, before importing distributed, lets
the hook end first and succeed instead of being killed with its container (FailedPreStopHook). A scheduler that
goes away during the retirement ends the hook the same way.
Needs DASK_SCHEDULER_ADDRESS and DASK_WORKER_NAME in the container's environment.
*/ -}}
{{- define "dp.retireCommand" -}}
- python
- -c
- |
  import os, socket
  name, address = os.environ["DASK_WORKER_NAME"], os.environ["DASK_SCHEDULER_ADDRESS"]
  host, _, port = address.split("://")[-1].rpartition(":")
  try:
      socket.create_connection((host, int(port)), timeout=3).close()
  except OSError as exc:
      raise SystemExit(print(f"preStop: no scheduler to retire {name} to ({exc})"))
  from distributed import Client
  try:
      with Client(address, timeout="10s") as client:
          client.retire_workers(names=[name], close_workers=True, remove=True)
  except (OSError, TimeoutError) as exc:
      print(f"preStop: the scheduler went away while retiring {name} ({type(exc).__name__})")
{{- end }}
