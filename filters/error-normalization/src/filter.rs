use llmobs_core::error_normalization::{ErrorExchange, ErrorNormalization};
use llmobs_core::host::LogLevel;
use llmobs_core::response::End;
use llmobs_wasm_host::{body_bytes, log, replace_body, ProxyHost};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::rc::Rc;

llmobs_wasm_host::module!("error_normalization", ErrorNormalization::new, |filter| Box::new(Stream {
    filter,
    exchange: None,
    held_bytes: 0
}));

struct Stream {
    filter: Option<Rc<ErrorNormalization>>,
    exchange: Option<ErrorExchange>,
    /// Bytes of the buffered error body already read: while the body callbacks pause, Envoy
    /// accumulates the body and `body_size` is the total so far.
    held_bytes: usize,
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        if let Some(filter) = &self.filter {
            self.exchange = Some(filter.on_request_headers(&mut ProxyHost));
        }
        Action::Continue
    }

    // Never pauses here: Envoy turns a Wasm headers pause into a pause of the body callbacks
    // too (see the core module docs).
    fn on_http_response_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        if let (Some(filter), Some(ex)) = (&self.filter, &mut self.exchange) {
            filter.on_response_headers(&mut ProxyHost, ex, end_of_stream);
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let (Some(filter), Some(ex)) = (&self.filter, &mut self.exchange) else { return Action::Continue };
        if !ex.rewriting() {
            // Not paused: the buffer holds exactly this callback's new bytes.
            let chunk = if ex.wants_body() { body_bytes(true, 0, body_size).unwrap_or_default() } else { Vec::new() };
            filter.on_response_body(&mut ProxyHost, ex, &chunk, end_of_stream);
            return Action::Continue;
        }
        let new_len = body_size.saturating_sub(self.held_bytes);
        let chunk = body_bytes(true, self.held_bytes, new_len).unwrap_or_default();
        self.held_bytes = body_size;
        if body_size > filter.max_error_body_bytes() && !end_of_stream {
            // Too large to rewrite: classify by what was read, pass the body on unchanged.
            filter.on_response_body(&mut ProxyHost, ex, &chunk, false);
            filter.release(ex);
            self.held_bytes = 0;
            return Action::Continue;
        }
        if let Some(body) = filter.on_response_body(&mut ProxyHost, ex, &chunk, end_of_stream) {
            if !replace_body(true, 0, body_size, &body) {
                log(LogLevel::Warn, "llmobs error_normalization: could not replace an error body; sent unchanged");
            }
        }
        if end_of_stream {
            Action::Continue
        } else {
            Action::Pause
        }
    }

    // HTTP/2 responses with trailers never set end_of_stream on the last data frame.
    fn on_http_response_trailers(&mut self, _trailers: usize) -> Action {
        if let (Some(filter), Some(ex)) = (&self.filter, &mut self.exchange) {
            filter.finish(&mut ProxyHost, ex, End::Complete);
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        if let (Some(filter), Some(ex)) = (&self.filter, &mut self.exchange) {
            filter.finish(&mut ProxyHost, ex, End::Aborted);
        }
    }
}
