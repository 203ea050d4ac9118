use crate::proxy::{configure, ProxyHost};
use llmobs_core::config::ConfigError;
use llmobs_core::host::{Environment, Host, MetricId, Stats};
use llmobs_core::metric;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};
use std::cell::Cell;
use std::rc::Rc;

type Build<F> = fn(&[u8], &mut ProxyHost) -> Result<F, ConfigError>;
type NewStream<F> = fn(Option<Rc<F>>) -> Box<dyn HttpContext>;

/// The root context every module shares: parses and compiles the configuration once in
/// `on_configure` (a bad one logs one line naming the field and returns false, so Envoy refuses
/// it), then hands the compiled filter to each new HTTP stream.
pub struct Root<F> {
    name: &'static str,
    build: Build<F>,
    new_stream: NewStream<F>,
    filter: Option<Rc<F>>,
    trap: Trap,
    memory: MemoryGauge,
}

/// `llmobs.wasm_memory_bytes{plugin}`: the VM's linear memory size. Wasm memory only grows, so
/// a leak or an unbounded buffer shows as a rising step; checked at every new stream (one
/// `memory.size` instruction) and written to the host only when it changed. Every worker's VM
/// writes the same gauge, so it shows the latest sample of any of them. The evaluation exporter
/// (a bootstrap service, no streams) samples it on its tick.
#[derive(Debug)]
pub struct MemoryGauge {
    metric: Option<MetricId>,
    published: Cell<usize>,
}

impl MemoryGauge {
    /// Labelled with Envoy's plugin name (the filter config's `name`), as the rule-set gauge is;
    /// the module's own name when the host has none.
    pub fn define(module: &str) -> Self {
        let mut host = ProxyHost::default();
        let plugin = host.property(&["plugin_name"]).map(|p| String::from_utf8_lossy(&p).into_owned());
        let plugin = plugin.as_deref().unwrap_or(module);
        let metric = host.define_gauge(&metric::name("llmobs.wasm_memory_bytes", &[("plugin", plugin)])).ok();
        let gauge = Self { metric, published: Cell::new(0) };
        gauge.sample();
        gauge
    }

    pub fn sample(&self) {
        let bytes = core::arch::wasm32::memory_size(0) * 65536;
        if let Some(metric) = self.metric {
            if bytes != self.published.get() {
                self.published.set(bytes);
                ProxyHost::default().set_gauge(metric, bytes as u64);
            }
        }
    }
}
/// Test-only VM failure, to prove each filter's `failure_policy` in real Envoy: the VM
/// environment variable `LLMOBS_TEST_TRAP` (`vm_config.environment_variables.key_values`, never
/// set in production configs) makes a request's first callback execute `unreachable`, which fails
/// the VM. `always`: every request; `once`: the first request of the process (a shared-data mark
/// survives VM reloads), so `FAIL_RELOAD` can be seen serving the next request from a fresh VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trap {
    Never,
    Always,
    Once,
}

struct TrapStream;

impl Context for TrapStream {}

impl HttpContext for TrapStream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        core::arch::wasm32::unreachable()
    }
}

impl<F> std::fmt::Debug for Root<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Root").field("name", &self.name).field("configured", &self.filter.is_some()).finish()
    }
}

impl<F> Root<F> {
    pub fn new(name: &'static str, build: Build<F>, new_stream: NewStream<F>) -> Self {
        Self {
            name,
            build,
            new_stream,
            filter: None,
            trap: Trap::Never,
            memory: MemoryGauge { metric: None, published: Cell::new(0) },
        }
    }
}

impl<F> Context for Root<F> {}

impl<F> RootContext for Root<F> {
    fn on_configure(&mut self, _size: usize) -> bool {
        self.trap = match ProxyHost::default().env_var("LLMOBS_TEST_TRAP").as_deref() {
            Some(b"always") => Trap::Always,
            Some(b"once") => Trap::Once,
            _ => Trap::Never,
        };
        self.filter = configure(self.name, self.build).map(Rc::new);
        if self.memory.metric.is_none() {
            self.memory = MemoryGauge::define(self.name);
            // Once per VM, like the memory gauge: the release and revision of this module.
            let mut host = ProxyHost::default();
            if let Ok(info) = host.define_gauge(&llmobs_core::build::info_metric(&format!("llmobs_{}", self.name))) {
                host.set_gauge(info, 1);
            }
        }
        self.filter.is_some()
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        self.memory.sample();
        let trap = match self.trap {
            Trap::Never => false,
            Trap::Always => true,
            Trap::Once => {
                let mark = format!("llmobs.test_trap.{}", self.name);
                let mut host = ProxyHost::default();
                let first = host.shared_data(&mark).is_none();
                first && host.set_shared_data(&mark, b"1", None).is_ok()
            }
        };
        if trap {
            return Some(Box::new(TrapStream));
        }
        Some((self.new_stream)(self.filter.clone()))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// The module entry point: installs the shared [`Root`] for a filter. Also installs the SDK's
/// panic hook (through `set_log_level`), which logs a panic at Critical before the VM aborts.
///
/// `llmobs_wasm_host::module!("correlation", Correlation::new, |filter| Box::new(Stream { .. }));`
#[macro_export]
macro_rules! module {
    ($name:literal, $build:expr, $new_stream:expr) => {
        proxy_wasm::main! {{
            proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Trace);
            proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
                Box::new($crate::Root::new($name, $build, $new_stream))
            });
        }}
    };
}
