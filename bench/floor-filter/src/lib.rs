//! The benchmark's floor (`bench/envoy_pack.py`): what any proxy-wasm filter costs in Envoy
//! before it does any work. It implements the same callbacks as the llmobs filters (request
//! headers, body and trailers; response headers, body and trailers; log) through the same SDK,
//! and each returns Continue without calling the host, so its cost is Envoy's crossings into the
//! VM and the SDK's dispatch alone.
//!
//! The soak (`bench/soak.py`) also runs it as a known leak, to show its verdict catches one: with
//! the configuration `{"leak_bytes_per_request": N}` every request keeps N bytes forever. Without
//! a configuration (the benchmark) nothing is kept and no host call is made per request.

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// Bytes kept by every request so far, when leaking.
type Kept = Rc<RefCell<Vec<Vec<u8>>>>;

#[derive(Default)]
struct Root {
    leak_bytes_per_request: usize,
    kept: Kept,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        if let Some(config) = self.get_plugin_configuration() {
            match leak_bytes_per_request(&config) {
                Some(n) => self.leak_bytes_per_request = n,
                None => return false,
            }
        }
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream { leak_bytes_per_request: self.leak_bytes_per_request, kept: Rc::clone(&self.kept) }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// `{"leak_bytes_per_request": N}` -> N; anything else is a configuration error. Read by hand:
/// a JSON library would make the floor a larger module than the one filter it stands for.
fn leak_bytes_per_request(config: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(config).ok()?;
    let inner = text.trim().strip_prefix('{')?.strip_suffix('}')?;
    let (key, value) = inner.split_once(':')?;
    if key.trim() != "\"leak_bytes_per_request\"" {
        return None;
    }
    value.trim().parse().ok()
}

struct Stream {
    leak_bytes_per_request: usize,
    kept: Kept,
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        Action::Continue
    }

    fn on_http_request_body(&mut self, _body_size: usize, _end_of_stream: bool) -> Action {
        Action::Continue
    }

    fn on_http_request_trailers(&mut self, _trailers: usize) -> Action {
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        Action::Continue
    }

    fn on_http_response_body(&mut self, _body_size: usize, _end_of_stream: bool) -> Action {
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _trailers: usize) -> Action {
        Action::Continue
    }

    fn on_log(&mut self) {
        if self.leak_bytes_per_request > 0 {
            // Written, not just reserved, so the pages are really committed (RSS grows).
            self.kept.borrow_mut().push(vec![0xA5; self.leak_bytes_per_request]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::leak_bytes_per_request;

    #[test]
    fn the_leak_size_is_read_from_its_one_key_and_anything_else_is_refused() {
        assert_eq!(leak_bytes_per_request(br#"{"leak_bytes_per_request": 16384}"#), Some(16384));
        assert_eq!(leak_bytes_per_request(br#" {"leak_bytes_per_request":0} "#), Some(0));
        assert_eq!(leak_bytes_per_request(br#"{"leak": 1}"#), None);
        assert_eq!(leak_bytes_per_request(br#"{"leak_bytes_per_request": -1}"#), None);
        assert_eq!(leak_bytes_per_request(b"16384"), None);
    }
}
