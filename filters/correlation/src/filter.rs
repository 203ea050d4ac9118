use llmobs_core::correlation::{Correlation, RequestIds};
use llmobs_wasm_host::ProxyHost;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::rc::Rc;

llmobs_wasm_host::module!("correlation", Correlation::new, |filter| Box::new(Stream { filter, ids: None }));

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
