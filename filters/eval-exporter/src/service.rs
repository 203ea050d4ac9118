use llmobs_core::evaluation::batcher::{Batcher, Outcome};
use llmobs_core::evaluation::config::ExporterConfig;
use llmobs_core::evaluation::otlp;
use llmobs_core::host::{Host, LogLevel, MetricId, Stats};
use llmobs_core::metric::{self, Handles};
use llmobs_wasm_host::{configure, log, MemoryGauge, ProxyHost};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, RootContext};
use proxy_wasm::types::MapType;
use std::time::Duration;

/// How often the batcher is asked for a batch (at most; a shorter flush interval ticks faster).
const TICK_MS: u64 = 100;

#[derive(Default)]
pub struct Exporter {
    config: Option<ExporterConfig>,
    batcher: Option<Batcher>,
    queue: Option<u32>,
    handles: Handles,
    queue_bytes: Option<MetricId>,
    published_bytes: Option<u64>,
    /// The token of the export request in flight.
    pending: Option<u32>,
    /// `llmobs.wasm_memory_bytes{plugin}`, sampled on every tick: with the receiver down the
    /// exporter is what holds records, so its memory is the one to watch (bounded by its caps).
    memory: Option<MemoryGauge>,
}

fn now_ms() -> u64 {
    ProxyHost::default().now_nanos() / 1_000_000
}

impl Exporter {
    fn count(&self, name: &str, labels: &[(&str, &str)], delta: u64) {
        if delta > 0 {
            self.handles.count(&mut ProxyHost::default(), metric::name(name, labels), delta);
        }
    }

    fn publish_bytes(&mut self) {
        let (Some(gauge), Some(batcher)) = (self.queue_bytes, &self.batcher) else { return };
        let bytes = batcher.held_bytes() as u64;
        if self.published_bytes != Some(bytes) {
            self.published_bytes = Some(bytes);
            ProxyHost::default().set_gauge(gauge, bytes);
        }
    }

    fn drain_queue(&mut self) {
        let (Some(queue), Some(batcher)) = (self.queue, &mut self.batcher) else { return };
        let now = now_ms();
        let mut dropped: Vec<&'static str> = Vec::new();
        // Everything the queue holds now: the batcher's caps bound what is kept.
        while let Ok(Some(record)) = hostcalls::dequeue_shared_queue(queue) {
            if let Err(reason) = batcher.push(record, now) {
                dropped.push(reason.label());
            }
        }
        for reason in dropped {
            self.count("llmobs.eval_export.records_dropped", &[("reason", reason)], 1);
        }
        self.publish_bytes();
    }

    fn flush(&mut self) {
        if self.pending.is_some() {
            return;
        }
        let (Some(config), Some(batcher)) = (&self.config, &mut self.batcher) else { return };
        let Some(batch) = batcher.next(now_ms()) else { return };
        let body = otlp::export_request(&config.service_name, &batch.records);
        let headers = vec![
            (":method", "POST"),
            (":path", config.path.as_str()),
            (":authority", config.authority()),
            ("content-type", "application/x-protobuf"),
        ];
        let timeout = Duration::from_millis(config.timeout_ms);
        match hostcalls::dispatch_http_call(&config.cluster, headers, Some(&body), vec![], timeout) {
            Ok(token) => self.pending = Some(token),
            Err(_) => {
                // An unknown cluster or a refused call: a failed send like any other.
                log(LogLevel::Debug, "llmobs eval_exporter: dispatch_http_call refused");
                self.finished(false);
            }
        }
    }

    fn finished(&mut self, ok: bool) {
        let Some(batcher) = &mut self.batcher else { return };
        match batcher.finished(ok, now_ms()) {
            Outcome::Sent(0) => {}
            Outcome::Sent(n) => {
                self.count("llmobs.eval_export.batches", &[("result", "sent")], 1);
                self.count("llmobs.eval_export.records_sent", &[], n as u64);
            }
            Outcome::Retrying { .. } => self.count("llmobs.eval_export.batches", &[("result", "failed")], 1),
            Outcome::GaveUp(n) => {
                self.count("llmobs.eval_export.batches", &[("result", "failed")], 1);
                self.count("llmobs.eval_export.records_dropped", &[("reason", "max_attempts")], n as u64);
            }
        }
        self.publish_bytes();
    }
}

impl Context for Exporter {
    fn on_http_call_response(&mut self, token_id: u32, _headers: usize, _body_size: usize, _trailers: usize) {
        if self.pending != Some(token_id) {
            return;
        }
        self.pending = None;
        // No headers at all: the call failed (reset, timeout, no healthy host).
        let status = hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status").ok().flatten();
        let ok = status.and_then(|s| s.parse::<u16>().ok()).is_some_and(|s| (200..300).contains(&s));
        if !ok {
            log(LogLevel::Debug, "llmobs eval_exporter: an export request failed");
        }
        self.finished(ok);
        self.flush();
    }
}

impl RootContext for Exporter {
    fn on_vm_start(&mut self, _size: usize) -> bool {
        true
    }

    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(config) = configure("eval_exporter", |bytes, _| ExporterConfig::parse(bytes)) else { return false };
        let Ok(queue) = hostcalls::register_shared_queue(&config.queue) else {
            log(LogLevel::Error, "llmobs eval_exporter: could not register the shared queue");
            return false;
        };
        let tick = config.flush_interval_ms.min(TICK_MS);
        if hostcalls::set_tick_period(Duration::from_millis(tick)).is_err() {
            return false;
        }
        let mut host = ProxyHost::default();
        if self.queue_bytes.is_none() {
            self.queue_bytes = host.define_gauge("llmobs.eval_export.queue_bytes").ok();
            self.memory = Some(MemoryGauge::define("llmobs_eval_exporter"));
            if let Ok(info) = host.define_gauge(&llmobs_core::build::info_metric("llmobs_eval_exporter")) {
                host.set_gauge(info, 1);
            }
        }
        // A new configuration keeps what is queued only when the limits hold it; simplest and
        // bounded: records already batched under the old limits are sent under the new ones.
        match &mut self.batcher {
            Some(_) if self.config.as_ref().is_some_and(|old| old.limits() == config.limits()) => {}
            _ => self.batcher = Some(Batcher::new(config.limits())),
        }
        self.queue = Some(queue);
        self.config = Some(config);
        self.publish_bytes();
        true
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        if Some(queue_id) == self.queue {
            self.drain_queue();
            self.flush();
        }
    }

    fn on_tick(&mut self) {
        if let Some(memory) = &self.memory {
            memory.sample();
        }
        self.flush();
    }
}
