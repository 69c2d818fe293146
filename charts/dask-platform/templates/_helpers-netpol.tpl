{{- /*
NetworkPolicy building blocks: the peer labels the components' policies select each other by, and the egress rules
several components need (object storage, the cloud identity endpoints, the API server).
Helm reads every template of the chart together, so any template may include these. Helpers that need
the context take a dict (root: the caller's $; component: the app.kubernetes.io/component value), the others
the root context.
*/ -}}

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
