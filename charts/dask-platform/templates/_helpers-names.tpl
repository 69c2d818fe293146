{{- /*
Names, labels and ownership, shared by every component: object names, selector and common labels, ServiceAccounts,
PriorityClasses, the Argo CD setup wave, and the scheduler's name and address (the workers and Jupyter use them).
Helm reads every template of the chart together, so any template may include these. Helpers that need
the context take a dict (root: the caller's $; component: the app.kubernetes.io/component value), the others
the root context.
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
