use llmobs_core::host::{Host, LogLevel};
use llmobs_core::redaction::{Exchange, PiiRedaction, RequestVerdict};
use llmobs_wasm_host::{body_bytes, log, replace_body, ProxyHost};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::rc::Rc;

llmobs_wasm_host::module!("pii_redaction", PiiRedaction::new, |filter| Box::new(Stream { filter, exchange: None }));

struct Stream {
    filter: Option<Rc<PiiRedaction>>,
    exchange: Option<Exchange>,
}

impl Context for Stream {}

/// Carries out the core's verdict on a request body (the body buffer is the whole body).
fn answer(verdict: RequestVerdict, body_size: usize) -> Action {
    match verdict {
        RequestVerdict::Forward => Action::Continue,
        RequestVerdict::Replace(body) => {
            if !replace_body(false, 0, body_size, &body) {
                // Forwarding the original would send unredacted data upstream: refuse instead.
                log(LogLevel::Error, "llmobs pii_redaction: could not replace a request body; refused");
                ProxyHost.send_local_response(500, "llmobs_pii_rewrite_failed", &[], b"");
                return Action::Pause;
            }
            Action::Continue
        }
        RequestVerdict::Reject { status, body } => {
            let details = match status {
                413 => "llmobs_pii_over_limit",
                415 => "llmobs_pii_uninspectable",
                _ => "llmobs_pii_blocked",
            };
            let headers = [("content-type", "application/json"), ("x-llmobs-blocked", "pii")];
            ProxyHost.send_local_response(status, details, &headers, &body);
            Action::Pause
        }
    }
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        if let Some(filter) = &self.filter {
            self.exchange = Some(filter.on_request_headers(&mut ProxyHost));
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let (Some(filter), Some(ex)) = (&self.filter, &mut self.exchange) else { return Action::Continue };
        if ex.buffers_request() {
            // While paused, Envoy accumulates the body and body_size is the total so far; the
            // limit stays under Envoy's own buffer limit, so Envoy never answers 413 itself.
            if body_size > filter.max_inspected_bytes() {
                let verdict = filter.on_request_over_limit(&mut ProxyHost, ex);
                return answer(verdict, body_size);
            }
            if !end_of_stream {
                return Action::Pause;
            }
            let body = body_bytes(false, 0, body_size).unwrap_or_default();
            let verdict = filter.on_request_body(&mut ProxyHost, ex, &body);
            return answer(verdict, body_size);
        }
        if ex.observes_request() {
            // Not paused: the buffer holds exactly this callback's new bytes.
            let chunk = body_bytes(false, 0, body_size).unwrap_or_default();
            filter.on_request_chunk(ex, &chunk);
            if end_of_stream {
                filter.on_request_end(&mut ProxyHost, ex);
            }
        }
        Action::Continue
    }

    fn on_http_request_trailers(&mut self, _trailers: usize) -> Action {
        match (&self.filter, &mut self.exchange) {
            (Some(filter), Some(ex)) => answer(filter.on_request_trailers(&mut ProxyHost, ex), 0),
            _ => Action::Continue,
        }
    }

    // Never pauses here: Envoy turns a Wasm headers pause into a pause of the body callbacks.
    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        if let (Some(filter), Some(ex)) = (&self.filter, &mut self.exchange) {
            filter.on_response_headers(&mut ProxyHost, ex);
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let (Some(filter), Some(ex)) = (&self.filter, &mut self.exchange) else { return Action::Continue };
        if ex.buffers_response() {
            if body_size > filter.max_inspected_bytes() {
                filter.on_response_over_limit(ex);
                return Action::Continue;
            }
            if !end_of_stream {
                return Action::Pause;
            }
            let body = body_bytes(true, 0, body_size).unwrap_or_default();
            if let Some(out) = filter.on_response_body(&mut ProxyHost, ex, &body) {
                if !replace_body(true, 0, body_size, &out) {
                    log(LogLevel::Error, "llmobs pii_redaction: could not replace a response body");
                }
            }
            return Action::Continue;
        }
        if ex.reads_response() {
            let chunk = body_bytes(true, 0, body_size).unwrap_or_default();
            if let Some(out) = filter.on_response_chunk(&mut ProxyHost, ex, &chunk, end_of_stream) {
                if out != chunk && !replace_body(true, 0, body_size, &out) {
                    log(LogLevel::Error, "llmobs pii_redaction: could not replace a response chunk");
                }
            }
        }
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _trailers: usize) -> Action {
        if let (Some(filter), Some(ex)) = (&self.filter, &mut self.exchange) {
            filter.finish(&mut ProxyHost, ex);
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        if let (Some(filter), Some(ex)) = (&self.filter, &mut self.exchange) {
            filter.finish(&mut ProxyHost, ex);
        }
    }
}
