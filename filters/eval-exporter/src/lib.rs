//! llmobs evaluation exporter (`dist/llmobs_eval_exporter.wasm`): an Envoy bootstrap Wasm
//! service (`envoy.bootstrap.wasm`, `singleton: true`, so one instance on the main thread).
//!
//! A thin adapter around [`llmobs_core::evaluation::batcher::Batcher`]: it registers the shared
//! queue the HTTP filters enqueue evaluation records in, moves each record into the batcher when
//! the host says the queue is ready, and on every tick sends the batch the batcher hands out as
//! one OTLP/HTTP logs request (`dispatch_http_call` to the configured cluster, protobuf). The
//! answer decides: 2xx sent, anything else (a status, a reset, a timeout) failed and retried with
//! backoff. Counted in `llmobs.eval_export.*`; never a record in a log line or a metric.
//! See `docs/filters/evaluation-export.md`.

#[cfg(target_arch = "wasm32")]
mod service;

#[cfg(target_arch = "wasm32")]
proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
        Box::new(service::Exporter::default())
    });
}}
