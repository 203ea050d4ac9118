//! The llmobs [`Host`] and [`Stats`] traits over raw proxy-wasm hostcalls.
//!
//! The proxy-wasm 0.2 trait helpers (`self.get_http_request_header(..)`) unwrap the host's
//! status, and even its raw `hostcalls` `panic!` on statuses they do not expect (seen on Envoy
//! 1.40: reading a response header in a late body callback), which fails the VM. This adapter
//! imports the ABI functions itself ([`abi`]) and turns every failure into a value: a missing
//! header, a skipped write, a `HostError`. Header values are read as bytes, since a non-UTF-8
//! value would make the string helpers fail. The proxy-wasm crate is still used for the context
//! dispatch, the allocator it exports, and its panic hook.
//!
//! Compiled only for `wasm32`: natively the crate is empty (see `Cargo.toml`).

#[cfg(target_arch = "wasm32")]
mod abi;
#[cfg(target_arch = "wasm32")]
mod proxy;
#[cfg(target_arch = "wasm32")]
mod root;
#[cfg(target_arch = "wasm32")]
mod stream;

#[cfg(target_arch = "wasm32")]
pub use proxy::{body_bytes, configure, log, plugin_configuration, replace_body, ProxyHost};
#[cfg(target_arch = "wasm32")]
pub use root::{MemoryGauge, Root};
#[cfg(target_arch = "wasm32")]
pub use stream::BundleStream;
