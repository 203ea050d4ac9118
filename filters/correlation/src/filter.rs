use llmobs_core::correlation::{Correlation, RequestIds};
use llmobs_wasm_host::{configure, ProxyHost};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel as ProxyLevel};
use std::rc::Rc;

proxy_wasm::main! {{
    // Also installs the SDK's panic hook, which logs a panic at Critical before the VM aborts.
    proxy_wasm::set_log_level(ProxyLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { filter: None }) });
}}

struct Root {
    filter: Option<Rc<Correlation>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        self.filter = configure("correlation", Correlation::new).map(Rc::new);
        self.filter.is_some()
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream { filter: self.filter.clone(), ids: None }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Stream {
    filter: Option<Rc<Correlation>>,
    ids: Option<RequestIds>,
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        if let Some(filter) = &self.filter {
            self.ids = Some(filter.on_request_headers(&mut ProxyHost));
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        if let (Some(filter), Some(ids)) = (&self.filter, &self.ids) {
            filter.on_response_headers(&mut ProxyHost, ids);
        }
        Action::Continue
    }
}
