//! A minimal protobuf writer for OTLP/HTTP logs (`opentelemetry/proto/collector/logs/v1`):
//! just the messages an evaluation record needs, written by hand so no protobuf crate (and no
//! code generator) enters the modules.
//!
//! A batch is an `ExportLogsServiceRequest` with one `ResourceLogs` (the resource's
//! `service.name`), one `ScopeLogs` (scope `llmobs`) and one `LogRecord` per record. Records are
//! encoded once, by the HTTP filter that made them, and travel through the shared queue as
//! encoded `LogRecord` messages; the exporter only wraps them ([`export_request`]): a repeated
//! message field is its elements' bytes, each behind its tag and length.

/// Wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;

/// Appends protobuf fields to a buffer.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.buf.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.buf.push(value as u8);
    }

    fn tag(&mut self, field: u32, wire: u8) {
        self.varint((u64::from(field) << 3) | u64::from(wire));
    }

    /// A length-delimited field: bytes, a string or an embedded message.
    pub fn bytes(&mut self, field: u32, value: &[u8]) {
        self.tag(field, LEN);
        self.varint(value.len() as u64);
        self.buf.extend_from_slice(value);
    }

    pub fn string(&mut self, field: u32, value: &str) {
        self.bytes(field, value.as_bytes());
    }

    /// An embedded message written by `write` (the length is known once it is written).
    pub fn message(&mut self, field: u32, write: impl FnOnce(&mut Writer)) {
        let mut inner = Writer::new();
        write(&mut inner);
        self.bytes(field, &inner.buf);
    }

    pub fn uint(&mut self, field: u32, value: u64) {
        self.tag(field, VARINT);
        self.varint(value);
    }

    /// `int64` (two's complement as a varint, as protobuf encodes it).
    pub fn int(&mut self, field: u32, value: i64) {
        self.uint(field, value as u64);
    }

    pub fn fixed64(&mut self, field: u32, value: u64) {
        self.tag(field, FIXED64);
        self.buf.extend_from_slice(&value.to_le_bytes());
    }
}

/// An attribute value (`AnyValue`): the kinds a record uses.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    Strings(Vec<String>),
    /// A nested map (`kvlist_value`), for the record's body.
    Map(Vec<(String, Value)>),
}

fn any_value(w: &mut Writer, value: &Value) {
    match value {
        Value::Str(s) => w.string(1, s),
        Value::Bool(b) => w.uint(2, u64::from(*b)),
        Value::Int(i) => w.int(3, *i),
        Value::Strings(items) => w.message(5, |array| {
            for item in items {
                array.message(1, |v| v.string(1, item));
            }
        }),
        Value::Map(entries) => w.message(6, |list| {
            for (key, value) in entries {
                list.message(1, |kv| key_value(kv, key, value));
            }
        }),
    }
}

fn key_value(w: &mut Writer, key: &str, value: &Value) {
    w.string(1, key);
    w.message(2, |v| any_value(v, value));
}

/// `SEVERITY_NUMBER_INFO`.
const SEVERITY_INFO: u64 = 9;

/// One `LogRecord` message (without its own tag): times, INFO severity, the body, attributes and
/// the trace id when known (16 bytes).
pub fn log_record(
    time_unix_nano: u64,
    body: &Value,
    attributes: &[(&str, Value)],
    trace_id: Option<[u8; 16]>,
) -> Vec<u8> {
    let mut w = Writer::new();
    w.fixed64(1, time_unix_nano);
    w.uint(2, SEVERITY_INFO);
    w.string(3, "INFO");
    w.message(5, |v| any_value(v, body));
    for (key, value) in attributes {
        w.message(6, |kv| key_value(kv, key, value));
    }
    if let Some(trace_id) = trace_id {
        w.bytes(9, &trace_id);
    }
    w.fixed64(11, time_unix_nano);
    w.into_bytes()
}

/// An `ExportLogsServiceRequest` holding `records` (each an encoded `LogRecord`) under one
/// resource (`service.name`) and one scope (`llmobs`, the release version).
pub fn export_request(service_name: &str, records: &[Vec<u8>]) -> Vec<u8> {
    let mut w = Writer::new();
    w.message(1, |resource_logs| {
        resource_logs.message(1, |resource| {
            resource.message(1, |kv| key_value(kv, "service.name", &Value::Str(service_name.to_string())));
        });
        resource_logs.message(2, |scope_logs| {
            scope_logs.message(1, |scope| {
                scope.string(1, "llmobs");
                scope.string(2, env!("CARGO_PKG_VERSION"));
            });
            for record in records {
                scope_logs.bytes(2, record);
            }
        });
    });
    w.into_bytes()
}

/// Bytes [`export_request`] adds around `records` of these sizes at most: the frames of the
/// three wrapping messages and each record's tag and length.
pub fn framing_bound(service_name: &str, record_count: usize) -> usize {
    64 + service_name.len() + record_count * 11
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A protobuf reader just strong enough to check what the writer wrote: (field, wire, bytes
    /// or value) per field, in order.
    fn fields(mut bytes: &[u8]) -> Vec<(u32, u8, Vec<u8>, u64)> {
        fn varint(bytes: &mut &[u8]) -> u64 {
            let mut out = 0u64;
            let mut shift = 0;
            loop {
                let (b, rest) = bytes.split_first().expect("truncated varint");
                *bytes = rest;
                out |= u64::from(b & 0x7f) << shift;
                shift += 7;
                if b & 0x80 == 0 {
                    return out;
                }
            }
        }
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let tag = varint(&mut bytes);
            let (field, wire) = ((tag >> 3) as u32, (tag & 7) as u8);
            match wire {
                VARINT => out.push((field, wire, Vec::new(), varint(&mut bytes))),
                FIXED64 => {
                    let (v, rest) = bytes.split_at(8);
                    bytes = rest;
                    out.push((field, wire, Vec::new(), u64::from_le_bytes(v.try_into().expect("8 bytes"))));
                }
                LEN => {
                    let n = varint(&mut bytes) as usize;
                    let (v, rest) = bytes.split_at(n);
                    bytes = rest;
                    out.push((field, wire, v.to_vec(), 0));
                }
                other => panic!("unexpected wire type {other}"),
            }
        }
        out
    }

    #[test]
    fn varints_use_seven_bits_a_byte_low_group_first() {
        let mut w = Writer::new();
        w.uint(1, 300);
        assert_eq!(w.into_bytes(), vec![0x08, 0xac, 0x02]);
    }

    #[test]
    fn a_negative_int64_takes_ten_bytes_as_protobuf_encodes_it() {
        let mut w = Writer::new();
        w.int(3, -1);
        let bytes = w.into_bytes();
        assert_eq!(bytes.len(), 11);
        assert_eq!(fields(&bytes), vec![(3, VARINT, Vec::new(), u64::MAX)]);
    }

    #[test]
    fn a_log_record_holds_time_severity_body_attributes_and_trace_id() {
        let body = Value::Map(vec![("prompt".into(), Value::Str("hi [EMAIL]".into()))]);
        let attrs = [("gen_ai.request.model", Value::Str("gpt-4o".into())), ("n", Value::Int(7))];
        let record = log_record(42, &body, &attrs, Some([1; 16]));
        let top = fields(&record);
        let numbers: Vec<u32> = top.iter().map(|f| f.0).collect();
        assert_eq!(numbers, vec![1, 2, 3, 5, 6, 6, 9, 11]);
        assert_eq!(top[0].3, 42);
        assert_eq!(top[1].3, SEVERITY_INFO);
        assert_eq!(top[6].2, vec![1; 16]);
        // body: AnyValue{kvlist_value{values[KeyValue{key, AnyValue{string}}]}}
        let kvlist = fields(&top[3].2);
        assert_eq!(kvlist[0].0, 6);
        let kv = fields(&fields(&kvlist[0].2)[0].2);
        assert_eq!(kv[0].2, b"prompt");
        assert_eq!(fields(&kv[1].2)[0].2, b"hi [EMAIL]");
        let model = fields(&top[4].2);
        assert_eq!(model[0].2, b"gen_ai.request.model");
        let int = fields(&fields(&top[5].2)[1].2);
        assert_eq!((int[0].0, int[0].3), (3, 7));
    }

    #[test]
    fn an_export_request_wraps_each_record_unchanged_under_one_resource_and_scope() {
        let records =
            vec![log_record(1, &Value::Str("a".into()), &[], None), log_record(2, &Value::Str("b".into()), &[], None)];
        let request = export_request("llmobs-eval", &records);
        let top = fields(&request);
        assert_eq!(top.len(), 1);
        let resource_logs = fields(&top[0].2);
        let resource = fields(&resource_logs[0].2);
        let service = fields(&resource[0].2);
        assert_eq!(service[0].2, b"service.name");
        assert_eq!(fields(&service[1].2)[0].2, b"llmobs-eval");
        let scope_logs = fields(&resource_logs[1].2);
        assert_eq!(fields(&scope_logs[0].2)[0].2, b"llmobs");
        let wrapped: Vec<Vec<u8>> = scope_logs[1..].iter().map(|f| f.2.clone()).collect();
        assert_eq!(wrapped, records);
        assert!(request.len() <= records.iter().map(Vec::len).sum::<usize>() + framing_bound("llmobs-eval", 2));
    }
}
