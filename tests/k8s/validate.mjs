// Validates Kubernetes manifests against the Kubernetes and Prometheus Operator schemas
// (kubernetes-models: types, required fields, enums). Unknown fields in core kinds are caught
// by kubernetes-validate --strict, run beside it. Usage: node validate.mjs FILE.yaml...
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

async function model(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  const path = group === ""
    ? `kubernetes-models/${version}/${kind}`
    : group === "monitoring.coreos.com"
      ? `@kubernetes-models/prometheus-operator/${group}/${version}/${kind}`
      : `kubernetes-models/${group}/${version}/${kind}`;
  const module = await import(path);
  return module[kind];
}

let failed = 0, checked = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    if (doc.errors.length) { console.error(`${file}: ${doc.errors[0].message}`); failed++; continue; }
    const obj = doc.toJS();
    if (!obj || obj.kind === "Kustomization") continue;
    try {
      const Model = await model(obj.apiVersion, obj.kind);
      new Model(obj).validate();
      checked++;
      console.log(`ok ${file} ${obj.kind}/${obj.metadata.name}`);
    } catch (e) {
      console.error(`${file} ${obj.kind}/${obj.metadata?.name}: ${e.message}`);
      failed++;
    }
  }
}
console.log(`${checked} valid, ${failed} invalid`);
process.exit(failed || checked === 0 ? 1 : 0);
