use llmobs_core::host::LogLevel;
use llmobs_core::token_accounting::{End, Exchange, TokenAccounting};
use llmobs_wasm_host::{body_bytes, log, replace_body, ProxyHost};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::rc::Rc;

llmobs_wasm_host::module!("token_accounting", TokenAccounting::new, |filter| Box::new(Stream {
    filter,
    exchange: None
}));

struct Stream {
    filter: Option<Rc<TokenAccounting>>,
    exchange: Option<Exchange>,
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        if let Some(filter) = &self.filter {
            self.exchange = Some(filter.on_request_headers(&mut ProxyHost));
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if let (Some(filter), Some(ex)) = (&self.filter, &mut self.exchange) {
            if ex.buffers_request() {
                // Opt-in include_usage injection: while paused, Envoy accumulates the body and
                // body_size is the total so far.
                if !end_of_stream && body_size <= filter.max_request_body_bytes() {
                    return Action::Pause;
                }
                let body = body_bytes(false, 0, body_size).unwrap_or_default();
                if !end_of_stream {
                    filter.stop_buffering_request(ex, &body);
                } else if let Some(edited) = filter.on_buffered_request(&mut ProxyHost, ex, &body) {
                    if !replace_body(false, 0, body_size, &edited) {
                        log(
                            LogLevel::Warn,
                            "llmobs token_accounting: could not replace the request body; sent unchanged",
                        );
                    }
                }
                return Action::Continue;
            }
            // Otherwise this filter always returns Continue, so Envoy never accumulates the body
            // for it: the buffer holds exactly this callback's new bytes, from offset 0.
            if ex.wants_request_body() {
                let chunk = body_bytes(false, 0, body_size).unwrap_or_default();
                filter.on_request_body(ex, &chunk, end_of_stream);
            }
        }
        Action::Continue
    }

    fn on_http_request_trailers(&mut self, _trailers: usize) -> Action {
        if let (Some(filter), Some(ex)) = (&self.filter, &mut self.exchange) {
            filter.on_request_end(ex);
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        if let (Some(filter), Some(ex)) = (&self.filter, &mut self.exchange) {
            filter.on_response_headers(&mut ProxyHost, ex, end_of_stream);
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if let (Some(filter), Some(ex)) = (&self.filter, &mut self.exchange) {
            if ex.rewrites_response() {
                let chunk = body_bytes(true, 0, body_size).unwrap_or_default();
                let out = filter.on_response_body_rewrite(&mut ProxyHost, ex, &chunk, end_of_stream);
                if out != chunk && !replace_body(true, 0, body_size, &out) {
                    log(LogLevel::Warn, "llmobs token_accounting: could not edit a response chunk; sent unchanged");
                }
                return Action::Continue;
            }
            let chunk =
                if ex.wants_response_body() { body_bytes(true, 0, body_size).unwrap_or_default() } else { Vec::new() };
            filter.on_response_body(&mut ProxyHost, ex, &chunk, end_of_stream);
        }
        Action::Continue
    }

    // HTTP/2 responses with trailers never set end_of_stream on the last data frame.
    fn on_http_response_trailers(&mut self, _trailers: usize) -> Action {
        if let (Some(filter), Some(ex)) = (&self.filter, &mut self.exchange) {
            filter.finish(&mut ProxyHost, ex, End::Complete);
        }
        Action::Continue
    }

    // The last fallback: a stream torn down before its end (client gone, upstream reset).
    fn on_log(&mut self) {
        if let (Some(filter), Some(ex)) = (&self.filter, &mut self.exchange) {
            filter.finish(&mut ProxyHost, ex, End::Aborted);
        }
    }
}
