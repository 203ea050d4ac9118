use crate::proxy::{body_bytes, replace_body, ProxyHost};
use llmobs_core::bundle::{Behaviour, BodyBuffer, Bundle, BundleExchange, Flow};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::rc::Rc;

/// The HTTP context every llmobs module runs: each callback is one call into
/// [`llmobs_core::bundle::Bundle`], whether the module carries one behaviour or all four.
pub struct BundleStream<C: Behaviour, R: Behaviour, A: Behaviour, E: Behaviour> {
    filter: Option<Rc<Bundle<C, R, A, E>>>,
    exchange: Option<BundleExchange<C, R, A, E>>,
}

impl<C, R, A, E> BundleStream<C, R, A, E>
where
    C: Behaviour + 'static,
    R: Behaviour + 'static,
    A: Behaviour + 'static,
    E: Behaviour + 'static,
{
    pub fn boxed(filter: Option<Rc<Bundle<C, R, A, E>>>) -> Box<dyn HttpContext> {
        Box::new(Self { filter, exchange: None })
    }
}

impl<C: Behaviour, R: Behaviour, A: Behaviour, E: Behaviour> std::fmt::Debug for BundleStream<C, R, A, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BundleStream").field("configured", &self.filter.is_some()).finish_non_exhaustive()
    }
}

/// The current body buffer of one direction.
struct HostBody {
    response: bool,
}

impl BodyBuffer for HostBody {
    fn read(&self, start: usize, len: usize) -> Option<Vec<u8>> {
        body_bytes(self.response, start, len)
    }

    fn replace(&mut self, len: usize, bytes: &[u8]) -> bool {
        replace_body(self.response, 0, len, bytes)
    }
}

fn action(flow: Flow) -> Action {
    match flow {
        Flow::Continue => Action::Continue,
        Flow::Pause => Action::Pause,
    }
}

impl<C: Behaviour, R: Behaviour, A: Behaviour, E: Behaviour> Context for BundleStream<C, R, A, E> {}

impl<C: Behaviour, R: Behaviour, A: Behaviour, E: Behaviour> HttpContext for BundleStream<C, R, A, E> {
    // Pauses only for a request the filter answers itself (the feedback endpoint), so the
    // router never starts an upstream request for it.
    fn on_http_request_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        let Some(filter) = &self.filter else { return Action::Continue };
        let mut host = ProxyHost::default();
        let mut ex = filter.on_request_headers(&mut host);
        let flow = filter.request_headers_flow(&mut host, &mut ex, end_of_stream);
        self.exchange = Some(ex);
        action(flow)
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        match (&self.filter, &mut self.exchange) {
            (Some(filter), Some(ex)) => action(filter.on_request_body(
                &mut ProxyHost::default(),
                ex,
                &mut HostBody { response: false },
                body_size,
                end_of_stream,
            )),
            _ => Action::Continue,
        }
    }

    fn on_http_request_trailers(&mut self, _trailers: usize) -> Action {
        match (&self.filter, &mut self.exchange) {
            (Some(filter), Some(ex)) => action(filter.on_request_trailers(&mut ProxyHost::default(), ex)),
            _ => Action::Continue,
        }
    }

    // Never pauses here: Envoy turns a Wasm headers pause into a pause of the body callbacks
    // (see the error-normalization core docs).
    fn on_http_response_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        if let (Some(filter), Some(ex)) = (&self.filter, &mut self.exchange) {
            filter.on_response_headers(&mut ProxyHost::default(), ex, end_of_stream);
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        match (&self.filter, &mut self.exchange) {
            (Some(filter), Some(ex)) => action(filter.on_response_body(
                &mut ProxyHost::default(),
                ex,
                &mut HostBody { response: true },
                body_size,
                end_of_stream,
            )),
            _ => Action::Continue,
        }
    }

    // HTTP/2 responses with trailers never set end_of_stream on the last data frame.
    fn on_http_response_trailers(&mut self, _trailers: usize) -> Action {
        if let (Some(filter), Some(ex)) = (&self.filter, &mut self.exchange) {
            filter.on_response_trailers(&mut ProxyHost::default(), ex);
        }
        Action::Continue
    }

    // The last fallback: a stream torn down before its end (client gone, upstream reset).
    fn on_log(&mut self) {
        if let (Some(filter), Some(ex)) = (&self.filter, &mut self.exchange) {
            filter.on_log(&mut ProxyHost::default(), ex);
        }
    }
}
