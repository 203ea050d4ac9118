//! Reading a configuration file as people keep them: the filter's JSON, the same as YAML, an
//! ECDS resource file or Envoy bootstrap (every Wasm `configuration.value` in it), an Istio
//! `WasmPlugin` (`spec.pluginConfig`) or an Envoy Gateway `EnvoyExtensionPolicy`
//! (`spec.wasm[].config`); several YAML documents in one file are each read.

use serde_json::Value;

/// Which module a configuration is for: each has its own schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    Correlation,
    PiiRedaction,
    TokenAccounting,
    ErrorNormalization,
    Bundle,
    /// The evaluation exporter service (`llmobs_eval_exporter`).
    EvalExporter,
}

impl Filter {
    pub const NAMES: &'static str =
        "correlation, pii_redaction, token_accounting, error_normalization, bundle, eval_exporter";

    pub fn from_name(name: &str) -> Option<Filter> {
        let name = name.replace('-', "_");
        // Module names (`llmobs_pii_redaction`), image URLs and root ids all carry the filter's.
        [
            ("bundle", Filter::Bundle),
            ("eval_exporter", Filter::EvalExporter),
            ("pii_redaction", Filter::PiiRedaction),
            ("token_accounting", Filter::TokenAccounting),
            ("error_normalization", Filter::ErrorNormalization),
            ("correlation", Filter::Correlation),
        ]
        .into_iter()
        .find(|(n, _)| name.contains(n))
        .map(|(_, f)| f)
    }
}

/// One configuration found in a file.
#[derive(Debug)]
pub struct Found {
    /// Where it is: the file, plus `#name` for one inside a manifest.
    pub label: String,
    /// Known from the manifest (module name, image); `None` for a bare configuration.
    pub filter: Option<Filter>,
    /// The configuration as the filter receives it.
    pub json: String,
    /// Whether `json` is text as written (error positions then point into it).
    pub as_written: bool,
}

pub fn load(path: &str) -> Result<Vec<Found>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    if text.trim_start().starts_with('{') || path.ends_with(".json") {
        return Ok(vec![Found { label: path.to_string(), filter: None, json: text, as_written: true }]);
    }
    let mut found = Vec::new();
    for (n, document) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
        let value: Value =
            serde::Deserialize::deserialize(document).map_err(|e| format!("{path}: not JSON or YAML: {e}"))?;
        if value.is_null() {
            continue;
        }
        let before = found.len();
        embedded(&value, path, &mut found);
        if found.len() == before && n == 0 && value.is_object() && !is_manifest(&value) {
            // A bare configuration written as YAML.
            found.push(Found { label: path.to_string(), filter: None, json: value.to_string(), as_written: false });
        }
    }
    if found.is_empty() {
        return Err(format!("{path}: no llmobs configuration found (a filter's JSON or YAML, an ECDS or Envoy file, a WasmPlugin or an EnvoyExtensionPolicy)"));
    }
    Ok(found)
}

fn is_manifest(value: &Value) -> bool {
    value.get("apiVersion").is_some() || value.get("static_resources").is_some() || value.get("resources").is_some()
}

/// Every Wasm configuration inside `value`.
fn embedded(value: &Value, path: &str, found: &mut Vec<Found>) {
    let kind = value.get("kind").and_then(Value::as_str);
    if kind == Some("WasmPlugin") {
        if let Some(config) = value.pointer("/spec/pluginConfig") {
            let url = value.pointer("/spec/url").and_then(Value::as_str).unwrap_or_default();
            let name = value.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("WasmPlugin");
            found.push(Found {
                label: format!("{path}#{name}"),
                filter: Filter::from_name(url).or_else(|| Filter::from_name(name)),
                json: config.to_string(),
                as_written: false,
            });
        }
        return;
    }
    if kind == Some("EnvoyExtensionPolicy") {
        for wasm in value.pointer("/spec/wasm").and_then(Value::as_array).into_iter().flatten() {
            let name = wasm.get("name").and_then(Value::as_str).unwrap_or("wasm");
            let url = wasm.pointer("/code/image/url").and_then(Value::as_str).unwrap_or_default();
            if let Some(config) = wasm.get("config") {
                found.push(Found {
                    label: format!("{path}#{name}"),
                    filter: Filter::from_name(name).or_else(|| Filter::from_name(url)),
                    json: config.to_string(),
                    as_written: false,
                });
            }
        }
        return;
    }
    match value {
        Value::Object(map) => {
            // Envoy's Wasm `PluginConfig`: `configuration` (a StringValue) beside `root_id`/`name`.
            if let Some(json) = map.get("configuration").and_then(|c| c.get("value")).and_then(Value::as_str) {
                let name = ["root_id", "name"]
                    .iter()
                    .find_map(|k| map.get(*k).and_then(Value::as_str))
                    .unwrap_or("configuration");
                let module =
                    value.pointer("/vm_config/code/local/filename").and_then(Value::as_str).unwrap_or_default();
                found.push(Found {
                    label: format!("{path}#{name}"),
                    filter: Filter::from_name(name).or_else(|| Filter::from_name(module)),
                    json: json.to_string(),
                    as_written: true,
                });
                return;
            }
            for item in map.values() {
                embedded(item, path, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| embedded(item, path, found)),
        _ => {}
    }
}
