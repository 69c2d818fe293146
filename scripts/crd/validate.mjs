// Validate Kubernetes custom resources (Argo CD, KEDA, prometheus-operator) against their CRD schemas, offline, with the @kubernetes-models
// packages (compiled from Argo CD's and KEDA's CRDs). Reads a JSON array of objects on stdin; prints a JSON
// array with one entry per object: {"kind", "name", "errors": [..]} (empty errors = valid). Exit 0 always.
import * as argo from "@kubernetes-models/argo-cd/argoproj.io/v1alpha1";
import * as keda from "@kubernetes-models/keda/keda.sh/v1alpha1";
import * as monitoring from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

const models = {
  "argoproj.io/v1alpha1": argo,
  "keda.sh/v1alpha1": keda,
  "monitoring.coreos.com/v1": monitoring,
};

let input = "";
for await (const chunk of process.stdin) input += chunk;
const results = JSON.parse(input).map((obj) => {
  const group = models[obj.apiVersion];
  const Model = group && group[obj.kind];
  const name = obj.metadata && obj.metadata.name;
  if (!Model) return { kind: obj.kind, name, errors: [`no schema for ${obj.apiVersion} ${obj.kind}`] };
  try {
    new Model(obj).validate();
    return { kind: obj.kind, name, errors: [] };
  } catch (err) {
    const details = err.details ? err.details.map((d) => `${d.instancePath || "/"} ${d.message}`) : [String(err)];
    return { kind: obj.kind, name, errors: details };
  }
});
process.stdout.write(JSON.stringify(results));
