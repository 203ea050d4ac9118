// Validates Istio Telemetry documents (JSON lines on stdin, one per line) against Istio's
// Telemetry v1 schema as @kubernetes-models/istio compiled it from the CRD; prints one JSON
// result per document: {"ok": true} or {"ok": false, "error": "..."}.
import { Telemetry } from "@kubernetes-models/istio/telemetry.istio.io/v1";
import { createInterface } from "node:readline";

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  try {
    new Telemetry(JSON.parse(line)).validate();
    console.log(JSON.stringify({ ok: true }));
  } catch (e) {
    console.log(JSON.stringify({ ok: false, error: String(e.message || e) }));
  }
}
