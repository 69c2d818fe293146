{{- /*
Helpers of the tenants' objects (templates/tenants/) and of the operator's per-tenant RBAC (templates/operator/).
Every tenant object lives in the tenant's namespace and carries the label dask-platform/tenant: <name>, by which
`dask-platform tenants` and submit find it.
*/ -}}

{{- /*
dp.tenantNamespace: the namespace of a tenant: tenancy.namespacePrefix followed by its name (dask_platform/tenants.py
derives the same name to validate it, and a test compares the two).
Args: root, name.
*/ -}}
{{- define "dp.tenantNamespace" -}}
{{- printf "%s%s" .root.Values.tenancy.namespacePrefix .name -}}
{{- end }}

{{- /*
dp.tenantLabels: dp.labels of component "tenant" plus the tenant's name.
Args: root, name.
*/ -}}
{{- define "dp.tenantLabels" -}}
{{ include "dp.labels" (dict "root" .root "component" "tenant") }}
dask-platform/tenant: {{ .name }}
{{- end }}

{{- /*
dp.tenantWorkerGroup: the worker group whose size a tenant's pods take (the tenant's workerGroup, else
tenancy.workerGroup), as YAML of that group's values; fails when no such group exists.
Args: root, tenant.
*/ -}}
{{- define "dp.tenantWorkerGroup" -}}
{{- $name := .tenant.workerGroup | default .root.Values.tenancy.workerGroup }}
{{- $group := index .root.Values.dask.workerGroups $name }}
{{- if not $group }}
{{- fail (printf "tenants: worker group %q does not exist in dask.workerGroups" $name) }}
{{- end }}
{{- toYaml $group }}
{{- end }}

{{- /*
dp.tenantSetupWave: the sync wave of a tenant's Namespace: before the setup wave (-1) of the ServiceAccounts and RBAC
that live in it.
*/ -}}
{{- define "dp.tenantSetupWave" -}}
argocd.argoproj.io/sync-wave: "-2"
{{- end }}
