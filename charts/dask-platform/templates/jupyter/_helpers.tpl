{{- /*
Helpers of JupyterLab only.
Helm reads every template of the chart together, so any template may include these. Helpers that need
the context take a dict (root: the caller's $; component: the app.kubernetes.io/component value), the others
the root context.
*/ -}}

{{- /*
dp.jupyterServicePort: JupyterLab's Service port as (name, number): https-jupyter on 443 when Jupyter serves TLS
itself (jupyter.tls.secretName), else http-jupyter on 80. The Service and the Ingress read it here.
Takes the root context; renders YAML: {name: ..., port: ...}.
*/ -}}
{{- define "dp.jupyterServicePort" -}}
{{- if .Values.jupyter.tls.secretName -}}
{name: https-jupyter, port: 443}
{{- else -}}
{name: http-jupyter, port: 80}
{{- end -}}
{{- end }}
