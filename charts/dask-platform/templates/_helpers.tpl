{{- /*
Helpers shared by the umbrella chart and its subcharts (dask, jupyter, cluster-autoscaler).
Helm parses every template of a release together, so a subchart may include these; the subcharts
therefore render only as part of this chart. Helpers that need the context take a dict:
  root:      the chart context ($) of the caller
  component: the app.kubernetes.io/component value (scheduler, worker, jupyter, ...)
*/ -}}

{{- /*
dp.fullname: the prefix of every object name: the release name, truncated to fit Kubernetes' 63 characters
once a component suffix is added.
*/ -}}
{{- define "dp.fullname" -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end }}

{{- /*
dp.componentName: "<release>-<component>", the name of a component's objects.
Args: root, component.
*/ -}}
{{- define "dp.componentName" -}}
{{- printf "%s-%s" (include "dp.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{- /*
dp.selectorLabels: the labels a Service or controller selects its pods by. Never add to these:
a Deployment's selector is immutable.
Args: root, component.
*/ -}}
{{- define "dp.selectorLabels" -}}
app.kubernetes.io/name: dask-platform
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- /*
dp.labels: the labels every object carries: the selector labels plus version (the chart's appVersion, the
platform release; the image tag also changes with every build) and ownership.
Args: root, component.
*/ -}}
{{- define "dp.labels" -}}
{{ include "dp.selectorLabels" . }}
app.kubernetes.io/part-of: dask-platform
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end }}

{{- /*
dp.podLabels: labels of a pod template: dp.labels plus global.podLabels (e.g. the Azure workload identity
opt-in label, set in values/azure.yaml).
Args: root, component.
*/ -}}
{{- define "dp.podLabels" -}}
{{ include "dp.labels" . }}
{{- with .root.Values.global.podLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- /*
dp.serviceAccountName: the ServiceAccount of an identity (key dask, jupyter or clusterAutoscaler), created by
that component's templates/serviceaccount.yaml through dp.serviceAccount.
Args: root, key.
*/ -}}
{{- define "dp.serviceAccountName" -}}
{{- printf "%s-%s" (include "dp.fullname" .root) (.key | kebabcase) | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{- /*
dp.serviceAccount: a component's ServiceAccount. Cloud identity (EKS IRSA, GKE Workload Identity, Azure Workload
Identity) is only annotations, set per cloud or per cluster in <component>.serviceAccount.annotations. The API
token is mounted only for components that call the Kubernetes API.
Args: root, key (dask, jupyter, clusterAutoscaler), annotations, automountToken.
*/ -}}
{{- define "dp.serviceAccount" -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "dp.serviceAccountName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "dp.labels" (dict "root" .root "component" (.key | kebabcase)) | nindent 4 }}
  annotations:
    {{- include "dp.setupWave" .root | nindent 4 }}
    {{- with .annotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
automountServiceAccountToken: {{ .automountToken }}
{{- end }}

{{- /*
dp.jupyterServicePort: JupyterLab's Service port as (name, number): https-jupyter on 443 when Jupyter serves TLS
itself (jupyter.tls.secretName), else http-jupyter on 80. The Service, the Ingress and the docs read it here.
Takes the jupyter chart's context; renders YAML: {name: ..., port: ...}.
*/ -}}
{{- define "dp.jupyterServicePort" -}}
{{- if .Values.tls.secretName -}}
{name: https-jupyter, port: 443}
{{- else -}}
{name: http-jupyter, port: 80}
{{- end -}}
{{- end }}

{{- /*
dp.identityChecksum: a pod-template annotation that changes with the ServiceAccount's annotations, so a new cloud
identity (an IRSA role ARN, an Azure client id, a GKE service account) rolls the pods that use it. The IRSA and Azure
Workload Identity webhooks inject their environment and token volume at pod admission only
(aws/amazon-eks-pod-identity-webhook pkg/handler/handler.go: MutatePod; Azure/azure-workload-identity
pkg/webhook/webhook.go: the mutating webhook on pod CREATE), so a running pod keeps the identity it started with.
Args: annotations (the ServiceAccount's).
*/ -}}
{{- define "dp.identityChecksum" -}}
dask-platform/identity-checksum: {{ toJson (.annotations | default dict) | sha256sum | trunc 16 | quote }}
{{- end }}

{{- /*
dp.image: "repository:tag" of the platform image (Dask, the jobs package, JupyterLab), from global.image.
Takes the root context.
*/ -}}
{{- define "dp.image" -}}
{{- printf "%s:%s" .Values.global.image.repository .Values.global.image.tag -}}
{{- end }}

{{- /*
dp.schedulerName: name of the scheduler Service (and Deployment). Takes the root context.
*/ -}}
{{- define "dp.schedulerName" -}}
{{- include "dp.componentName" (dict "root" . "component" "scheduler") -}}
{{- end }}

{{- /*
dp.schedulerAddress: the address clients and workers use: tcp://<scheduler Service>:<port>.
Takes the root context.
*/ -}}
{{- define "dp.schedulerAddress" -}}
{{- printf "tcp://%s:%d" (include "dp.schedulerName" .) (int .Values.global.ports.scheduler) -}}
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
dp.podSecurityContext / dp.containerSecurityContext: the hardened defaults every pod and container gets:
non-root, no privilege escalation, no capabilities, RuntimeDefault seccomp, read-only root filesystem
(writable paths are emptyDir mounts declared by each workload). Takes the root context.
*/ -}}
{{- define "dp.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.global.securityContext.runAsUser }}
runAsGroup: {{ .Values.global.securityContext.runAsGroup }}
fsGroup: {{ .Values.global.securityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "dp.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end }}

{{- /*
dp.imagePullSecrets: the pod's imagePullSecrets from global.imagePullSecrets (names). Takes the root context.
*/ -}}
{{- define "dp.imagePullSecrets" -}}
{{- with .Values.global.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
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
dp.setupWave: the Argo CD sync-wave annotation of objects that workloads depend on (ServiceAccounts, RBAC,
StorageClasses): wave -1 syncs, and must be healthy, before the Deployments of wave 0. Never on a
PersistentVolumeClaim (see jupyter's persistentvolumeclaim.yaml).
*/ -}}
{{- define "dp.setupWave" -}}
argocd.argoproj.io/sync-wave: "-1"
{{- end }}

{{- /*
dp.priorityClassName: the PriorityClass of a component ("scheduler" or "worker") when the chart creates them
(global.priorityClasses.create), so the scheduler preempts workers and is never the pod left Pending.
Args: root, component.
*/ -}}
{{- define "dp.priorityClassName" -}}
{{- printf "%s-%s-%s" .root.Release.Namespace (include "dp.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{- /*
dp.priorityClass: the PriorityClass of a component ("scheduler" or "worker"), with its value from
global.priorityClasses. Only the scheduler may preempt: a worker waits for room instead.
Args: root, component.
*/ -}}
{{- define "dp.priorityClass" -}}
{{- $root := .root }}
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata:
  name: {{ include "dp.priorityClassName" . }}
  labels:
    {{- include "dp.labels" . | nindent 4 }}
  annotations:
    {{- include "dp.setupWave" $root | nindent 4 }}
value: {{ index $root.Values.global.priorityClasses .component }}
globalDefault: false
preemptionPolicy: {{ eq .component "scheduler" | ternary "PreemptLowerPriority" "Never" }}
description: {{ printf "dask-platform %s of release %s in %s" .component $root.Release.Name $root.Release.Namespace | quote }}
{{- end }}

{{- /*
dp.peerLabels: the pod labels that NetworkPolicies select a peer by: "scheduler", "workers" (every worker group),
"jupyter" or "cluster-autoscaler", within this release.
Args: root, peer.
*/ -}}
{{- define "dp.peerLabels" -}}
{{- if eq .peer "workers" -}}
app.kubernetes.io/instance: {{ .root.Release.Name }}
dask-platform/role: worker
{{- else -}}
app.kubernetes.io/component: {{ .peer }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end }}
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

{{- /*
dp.serviceSpecExtras: the parts of a Service spec that depend on its type. A LoadBalancer Service is reachable
only from loadBalancerSourceRanges when that list is set (Kubernetes ServiceSpec; honoured by the EKS, GKE and
AKS load-balancer controllers). Whether the load balancer is internal is a cloud annotation in
values/<cloud>.yaml, never a branch here. Takes the component's service values.
*/ -}}
{{- define "dp.serviceSpecExtras" -}}
{{- if and (eq .type "LoadBalancer") .loadBalancerSourceRanges }}
loadBalancerSourceRanges:
  {{- toYaml .loadBalancerSourceRanges | nindent 2 }}
{{- end }}
{{- end }}

{{- /*
dp.objectStorageEgress: NetworkPolicy egress rules to object storage on port 443: anywhere when
global.networkPolicy.allowInternetEgress, and to global.networkPolicy.objectStorageCidrs (the narrow form, for
clusters without internet egress). Takes the root context; renders list items for an `egress:` list.
*/ -}}
{{- define "dp.objectStorageEgress" -}}
{{- $np := .Values.global.networkPolicy }}
{{- if $np.allowInternetEgress }}
- ports:
    - {port: 443, protocol: TCP}
{{- end }}
{{- with $np.objectStorageCidrs }}
- to:
    {{- range . }}
    - ipBlock: {cidr: {{ . }}}
    {{- end }}
  ports:
    - {port: 443, protocol: TCP}
{{- end }}
{{- end }}

{{- /*
dp.apiServerEgress: the NetworkPolicy egress rule to the Kubernetes API server: global.networkPolicy.apiServerPorts
(the port the server listens on; policy sees the endpoint after the `kubernetes` Service's DNAT), to
global.networkPolicy.apiServerCidrs when given, else to any address (the control plane's addresses are the cloud's).
Takes the root context; renders one list item for an `egress:` list.
*/ -}}
{{- define "dp.apiServerEgress" -}}
{{- $np := .Values.global.networkPolicy }}
- ports:
    {{- range $np.apiServerPorts }}
    - {port: {{ . }}, protocol: TCP}
    {{- end }}
  {{- with $np.apiServerCidrs }}
  to:
    {{- range . }}
    - ipBlock: {cidr: {{ . }}}
    {{- end }}
  {{- end }}
{{- end }}

{{- /*
dp.identityEgress: NetworkPolicy egress rules to the node-local endpoints that hand pods their cloud identity's
tokens (global.networkPolicy.identityEgress: CIDR and port, set in values/<cloud>.yaml with the provider's source).
Takes the root context; renders list items for an `egress:` list.
*/ -}}
{{- define "dp.identityEgress" -}}
{{- range .Values.global.networkPolicy.identityEgress }}
- to:
    - ipBlock: {cidr: {{ .cidr }}}
  ports:
    - {port: {{ .port }}, protocol: TCP}
{{- end }}
{{- end }}
