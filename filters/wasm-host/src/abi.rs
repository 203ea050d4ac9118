//! The proxy-wasm ABI calls this crate uses, declared here so that every status comes back as
//! a value.
//!
//! proxy-wasm 0.2's `hostcalls` wrappers `panic!` on any status they do not expect (for example
//! reading a response header after Envoy stopped exposing the header map), and a panic in a
//! filter fails its VM. These declarations import the same host functions (ABI 0.2.1, module
//! `env`) and return the raw status. Memory the host hands back was allocated through the SDK's
//! exported `proxy_on_memory_allocate`, i.e. the global allocator, so it is owned by a `Vec`.

// The one place the project needs `unsafe`: calls across the Wasm import boundary.
#![allow(unsafe_code)]

use std::ptr::null_mut;

/// A header map's entries, in order: (name, value).
pub type HeaderPairs = Vec<(Vec<u8>, Vec<u8>)>;

pub const OK: u32 = 0;
pub const NOT_FOUND: u32 = 1;
pub const CAS_MISMATCH: u32 = 8;

pub const MAP_REQUEST_HEADERS: u32 = 0;
pub const MAP_RESPONSE_HEADERS: u32 = 2;
pub const BUFFER_REQUEST_BODY: u32 = 0;
pub const BUFFER_RESPONSE_BODY: u32 = 1;
pub const BUFFER_PLUGIN_CONFIGURATION: u32 = 7;
pub const METRIC_COUNTER: u32 = 0;
pub const METRIC_GAUGE: u32 = 1;
pub const METRIC_HISTOGRAM: u32 = 2;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    fn proxy_set_buffer_bytes(
        buffer_type: u32,
        start: usize,
        size: usize,
        buffer_data: *const u8,
        buffer_size: usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(map_type: u32, return_data: *mut *mut u8, return_size: *mut usize) -> u32;
    fn proxy_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_set_property(path_data: *const u8, path_size: usize, value_data: *const u8, value_size: usize) -> u32;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_resolve_shared_queue(
        vm_id_data: *const u8,
        vm_id_size: usize,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_enqueue_shared_queue(queue_id: u32, value_data: *const u8, value_size: usize) -> u32;
    fn proxy_define_metric(metric_type: u32, name_data: *const u8, name_size: usize, return_id: *mut u32) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
}

/// Takes ownership of bytes the host returned (null means none).
fn owned(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        return Vec::new();
    }
    // SAFETY: the host allocated `size` bytes at `data` through proxy_on_memory_allocate (the
    // global allocator) and transferred ownership to the module.
    unsafe { Vec::from_raw_parts(data, size, size) }
}

fn status_to(status: u32) -> Result<(), u32> {
    if status == OK {
        Ok(())
    } else {
        Err(status)
    }
}

pub fn log(level: u32, message: &str) -> Result<(), u32> {
    // SAFETY: the pointer and length describe a live &str.
    status_to(unsafe { proxy_log(level, message.as_ptr(), message.len()) })
}

pub fn now_nanos() -> Result<u64, u32> {
    let mut t = 0u64;
    // SAFETY: `t` is a valid out-pointer for the call's duration.
    status_to(unsafe { proxy_get_current_time_nanoseconds(&mut t) }).map(|()| t)
}

pub fn get_buffer(buffer_type: u32, start: usize, max_size: usize) -> Result<Vec<u8>, u32> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: out-pointers are valid for the call's duration.
    let status = unsafe { proxy_get_buffer_bytes(buffer_type, start, max_size, &mut data, &mut size) };
    match status {
        OK => Ok(owned(data, size)),
        NOT_FOUND => Ok(Vec::new()),
        other => Err(other),
    }
}

pub fn set_buffer(buffer_type: u32, start: usize, size: usize, value: &[u8]) -> Result<(), u32> {
    // SAFETY: the pointer and length describe a live slice.
    status_to(unsafe { proxy_set_buffer_bytes(buffer_type, start, size, value.as_ptr(), value.len()) })
}

pub fn get_header(map_type: u32, name: &str) -> Result<Option<Vec<u8>>, u32> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: the key is a live &str; out-pointers are valid for the call's duration.
    let status = unsafe { proxy_get_header_map_value(map_type, name.as_ptr(), name.len(), &mut data, &mut size) };
    match status {
        OK => Ok(Some(owned(data, size))),
        NOT_FOUND => Ok(None),
        other => Err(other),
    }
}

/// Every entry of a header map, in order, in one host call. The host serializes them as
/// (ABI 0.2.1): the pair count, each pair's key and value sizes (u32 little-endian), then each
/// key and value followed by a NUL. Malformed data is an error, never a panic.
pub fn get_header_pairs(map_type: u32) -> Result<HeaderPairs, u32> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: out-pointers are valid for the call's duration.
    let status = unsafe { proxy_get_header_map_pairs(map_type, &mut data, &mut size) };
    if status != OK {
        return Err(status);
    }
    let bytes = owned(data, size);
    let word = |at: usize| -> Option<usize> {
        let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(u32::from_le_bytes(b) as usize)
    };
    let malformed = u32::MAX;
    let count = if bytes.is_empty() { 0 } else { word(0).ok_or(malformed)? };
    let mut sizes_at = 4usize;
    let mut data_at = count.checked_mul(8).and_then(|n| n.checked_add(4)).ok_or(malformed)?;
    let mut pairs = Vec::with_capacity(count.min(256));
    for _ in 0..count {
        let (key_len, value_len) =
            (word(sizes_at).ok_or(malformed)?, word(sizes_at.saturating_add(4)).ok_or(malformed)?);
        sizes_at = sizes_at.saturating_add(8);
        let key = bytes.get(data_at..data_at.checked_add(key_len).ok_or(malformed)?).ok_or(malformed)?.to_vec();
        data_at = data_at.saturating_add(key_len).saturating_add(1);
        let value = bytes.get(data_at..data_at.checked_add(value_len).ok_or(malformed)?).ok_or(malformed)?.to_vec();
        data_at = data_at.saturating_add(value_len).saturating_add(1);
        pairs.push((key, value));
    }
    Ok(pairs)
}

pub fn replace_header(map_type: u32, name: &str, value: &str) -> Result<(), u32> {
    // SAFETY: key and value are live &strs.
    status_to(unsafe {
        proxy_replace_header_map_value(map_type, name.as_ptr(), name.len(), value.as_ptr(), value.len())
    })
}

pub fn remove_header(map_type: u32, name: &str) -> Result<(), u32> {
    // SAFETY: the key is a live &str.
    status_to(unsafe { proxy_remove_header_map_value(map_type, name.as_ptr(), name.len()) })
}

/// Property paths are their parts joined by NUL (ABI 0.2.1).
fn path_bytes(path: &[&str]) -> Vec<u8> {
    path.join("\0").into_bytes()
}

pub fn get_property(path: &[&str]) -> Result<Option<Vec<u8>>, u32> {
    let path = path_bytes(path);
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: the path is a live Vec; out-pointers are valid for the call's duration.
    let status = unsafe { proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) };
    match status {
        OK if data.is_null() => Ok(None),
        OK => Ok(Some(owned(data, size))),
        NOT_FOUND => Ok(None),
        other => Err(other),
    }
}

pub fn set_property(path: &[&str], value: &[u8]) -> Result<(), u32> {
    let path = path_bytes(path);
    // SAFETY: path and value are live slices.
    status_to(unsafe { proxy_set_property(path.as_ptr(), path.len(), value.as_ptr(), value.len()) })
}

pub fn get_shared_data(key: &str) -> Result<Option<(Vec<u8>, u32)>, u32> {
    let (mut data, mut size, mut cas) = (null_mut(), 0usize, 0u32);
    // SAFETY: the key is a live &str; out-pointers are valid for the call's duration.
    let status = unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) };
    match status {
        OK => Ok(Some((owned(data, size), cas))),
        NOT_FOUND => Ok(None),
        other => Err(other),
    }
}

pub fn set_shared_data(key: &str, value: &[u8], cas: u32) -> Result<(), u32> {
    // SAFETY: key and value are live slices.
    status_to(unsafe { proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas) })
}

/// The id of the shared queue `name` that the VM `vm_id` registered; `None` when there is none.
pub fn resolve_shared_queue(vm_id: &str, name: &str) -> Result<Option<u32>, u32> {
    let mut id = 0u32;
    // SAFETY: vm_id and name are live &strs; `id` is a valid out-pointer.
    let status = unsafe { proxy_resolve_shared_queue(vm_id.as_ptr(), vm_id.len(), name.as_ptr(), name.len(), &mut id) };
    match status {
        OK => Ok(Some(id)),
        NOT_FOUND => Ok(None),
        other => Err(other),
    }
}

/// Adds `value` to a shared queue; the host wakes the queue's owner on its own thread.
pub fn enqueue_shared_queue(queue_id: u32, value: &[u8]) -> Result<(), u32> {
    // SAFETY: the value is a live slice.
    status_to(unsafe { proxy_enqueue_shared_queue(queue_id, value.as_ptr(), value.len()) })
}

pub fn define_metric(metric_type: u32, name: &str) -> Result<u32, u32> {
    let mut id = 0u32;
    // SAFETY: the name is a live &str; `id` is a valid out-pointer.
    status_to(unsafe { proxy_define_metric(metric_type, name.as_ptr(), name.len(), &mut id) }).map(|()| id)
}

pub fn increment_metric(id: u32, offset: i64) -> Result<(), u32> {
    // SAFETY: plain values.
    status_to(unsafe { proxy_increment_metric(id, offset) })
}

pub fn record_metric(id: u32, value: u64) -> Result<(), u32> {
    // SAFETY: plain values.
    status_to(unsafe { proxy_record_metric(id, value) })
}

/// Header pairs in the proxy-wasm map encoding: a count, each key and value length (all
/// little-endian u32), then each key and value followed by a NUL.
fn serialize_map(pairs: &[(&str, &str)]) -> Vec<u8> {
    let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    let mut out = Vec::new();
    out.extend_from_slice(&len(pairs.len()));
    for (k, v) in pairs {
        out.extend_from_slice(&len(k.len()));
        out.extend_from_slice(&len(v.len()));
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

pub fn send_local_response(status: u32, details: &str, body: &[u8], headers: &[(&str, &str)]) -> Result<(), u32> {
    let map = serialize_map(headers);
    // SAFETY: every pointer and length describes a live slice for the call's duration.
    status_to(unsafe {
        proxy_send_local_response(
            status,
            details.as_ptr(),
            details.len(),
            body.as_ptr(),
            body.len(),
            map.as_ptr(),
            map.len(),
            -1,
        )
    })
}
