{{- /*
What every pod shares: the image, pull Secrets, security contexts, the identity checksum that rolls pods on a new
cloud identity, and the Service fields the scheduler's and Jupyter's Services share.
Helm reads every template of the chart together, so any template may include these. Helpers that need
the context take a dict (root: the caller's $; component: the app.kubernetes.io/component value), the others
the root context.
*/ -}}

{{- /*
dp.image: "repository:tag" of the platform image (the pinned environment: Dask, JupyterLab; no job code), from global.image.
Takes the root context.
*/ -}}
{{- define "dp.image" -}}
{{- printf "%s:%s" .Values.global.image.repository .Values.global.image.tag -}}
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
