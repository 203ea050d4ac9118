//! Opt-in `stream_options.include_usage` injection for OpenAI-style streams.
//!
//! OpenAI Chat Completions streams carry usage only when the request asked for it
//! (`stream_options: {"include_usage": true}`), and then in one extra final chunk with
//! `choices: []`. With injection on, the filter adds the option to streaming requests that lack
//! it and removes that extra chunk from the response before the client sees it, so a client that
//! did not ask gets the stream it expected and the filter still gets exact usage.
//!
//! This is the one place token accounting changes traffic, so it is narrow: request bodies are
//! edited by inserting the option before the closing brace (every original byte kept), and
//! response events are removed whole, at SSE event boundaries, never re-synthesised.

use serde::Deserialize;

#[derive(Deserialize)]
struct StreamRequest {
    stream: Option<bool>,
    stream_options: Option<serde_json::Value>,
}

/// The request body with `include_usage` added, or `None` when nothing must change (not a
/// stream, already asked, or not a JSON object the filter can edit safely).
pub fn add_include_usage(body: &[u8]) -> Option<Vec<u8>> {
    let request: StreamRequest = serde_json::from_slice(body).ok()?;
    if request.stream != Some(true) {
        return None;
    }
    match request.stream_options {
        None => {
            let end = body.iter().rposition(|&b| b == b'}')?;
            let head = body.get(..end)?;
            let empty_object =
                head.iter().rposition(|b| !b.is_ascii_whitespace()).and_then(|i| head.get(i)) == Some(&b'{');
            let mut out = Vec::with_capacity(body.len() + 40);
            out.extend_from_slice(head);
            if !empty_object {
                out.push(b',');
            }
            out.extend_from_slice(br#""stream_options":{"include_usage":true}"#);
            out.extend_from_slice(body.get(end..)?);
            Some(out)
        }
        Some(serde_json::Value::Object(options)) => {
            if options.get("include_usage") == Some(&serde_json::Value::Bool(true)) {
                return None;
            }
            // Rare: options present without include_usage. Rewrite through a JSON value (key
            // order may change, content does not).
            let mut value: serde_json::Value = serde_json::from_slice(body).ok()?;
            let options = value.get_mut("stream_options")?.as_object_mut()?;
            options.insert("include_usage".into(), serde_json::Value::Bool(true));
            serde_json::to_vec(&value).ok()
        }
        Some(_) => None,
    }
}

/// Whether the client itself asked for streaming usage.
pub fn asks_for_usage(body: &[u8]) -> bool {
    serde_json::from_slice::<StreamRequest>(body)
        .ok()
        .and_then(|r| r.stream_options)
        .is_some_and(|o| o.get("include_usage") == Some(&serde_json::Value::Bool(true)))
}

/// Removes the usage-only chunk (`choices: []` with `usage`) from an SSE byte stream, passing
/// every other byte through unchanged. Bytes of an event not yet complete are held back until
/// its terminating blank line arrives (at most `max_pending` bytes; beyond that they pass
/// through as they are, since an event that large is not the small usage chunk).
#[derive(Debug, Default)]
pub struct UsageChunkStripper {
    pending: Vec<u8>,
    max_pending: usize,
    pub removed: u64,
}

impl UsageChunkStripper {
    pub fn new(max_pending: usize) -> Self {
        Self { pending: Vec::new(), max_pending, removed: 0 }
    }

    /// The bytes to send on for this chunk.
    pub fn push(&mut self, chunk: &[u8], end_of_stream: bool) -> Vec<u8> {
        self.pending.extend_from_slice(chunk);
        let mut out = Vec::with_capacity(self.pending.len());
        let mut start = 0;
        while let Some(len) = event_len(self.pending.get(start..).unwrap_or_default()) {
            let event = self.pending.get(start..start + len).unwrap_or_default();
            if is_usage_only(event) {
                self.removed += 1;
            } else {
                out.extend_from_slice(event);
            }
            start += len;
        }
        let rest = self.pending.get(start..).unwrap_or_default();
        if end_of_stream || rest.len() > self.max_pending {
            out.extend_from_slice(rest);
            self.pending.clear();
        } else {
            self.pending = rest.to_vec();
        }
        out
    }
}

/// Length of the first complete event in `buf` (through its blank line), if any. Lines end in
/// LF, CRLF or CR; a CR as the last byte may be half of a CRLF, so it is not a boundary yet.
fn event_len(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    let mut line_empty = true;
    while let Some(&b) = buf.get(i) {
        let ending = match b {
            b'\n' => 1,
            b'\r' => match buf.get(i + 1) {
                Some(b'\n') => 2,
                Some(_) => 1,
                None => return None,
            },
            _ => {
                line_empty = false;
                i += 1;
                continue;
            }
        };
        i += ending;
        if line_empty {
            return Some(i);
        }
        line_empty = true;
    }
    None
}

#[derive(Deserialize)]
struct UsageChunk {
    choices: Option<Vec<serde::de::IgnoredAny>>,
    usage: Option<serde::de::IgnoredAny>,
}

fn is_usage_only(event: &[u8]) -> bool {
    let mut data = Vec::new();
    for line in event.split(|&b| b == b'\n' || b == b'\r') {
        if let Some(rest) = line.strip_prefix(b"data:") {
            if !data.is_empty() {
                data.push(b'\n');
            }
            data.extend_from_slice(rest.strip_prefix(b" ").unwrap_or(rest));
        }
    }
    match serde_json::from_slice::<UsageChunk>(&data) {
        Ok(chunk) => chunk.usage.is_some() && chunk.choices.is_some_and(|c| c.is_empty()),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_usage_is_added_before_the_closing_brace_keeping_every_byte() {
        let body = br#"{"model": "gpt-4o", "stream": true, "messages": []}"#;
        let out = add_include_usage(body).unwrap();
        assert_eq!(
            out,
            br#"{"model": "gpt-4o", "stream": true, "messages": [],"stream_options":{"include_usage":true}}"#
        );
        assert!(asks_for_usage(&out));
    }

    #[test]
    fn nothing_changes_for_non_streams_or_clients_that_already_asked() {
        assert_eq!(add_include_usage(br#"{"stream": false}"#), None);
        assert_eq!(add_include_usage(br#"{"messages": []}"#), None);
        assert_eq!(add_include_usage(br#"{"stream": true, "stream_options": {"include_usage": true}}"#), None);
        assert_eq!(add_include_usage(b"not json"), None);
        assert_eq!(add_include_usage(br#"[{"stream": true}]"#), None);
    }

    #[test]
    fn options_without_include_usage_get_it() {
        let out = add_include_usage(br#"{"stream": true, "stream_options": {"x": 1}}"#).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["stream_options"]["x"], 1);
    }

    const STREAM: &[u8] = b"data: {\"choices\":[{\"delta\":{\"content\":\"caf\xc3\xa9\"}}],\"usage\":null}\r\n\r\n\
data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n\
data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\n\
data: [DONE]\n\n";

    #[test]
    fn the_usage_only_chunk_is_removed_under_every_chunk_split() {
        let usage_event = b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\n";
        let start = STREAM.windows(usage_event.len()).position(|w| w == usage_event).unwrap();
        let mut want = STREAM[..start].to_vec();
        want.extend_from_slice(&STREAM[start + usage_event.len()..]);
        for at in 0..=STREAM.len() {
            for size in [1, 2, 3, 7, 64, STREAM.len()] {
                let mut s = UsageChunkStripper::new(1 << 20);
                let mut out = Vec::new();
                let (a, b) = STREAM.split_at(at);
                let chunks: Vec<&[u8]> = a.chunks(size).chain(b.chunks(size)).collect();
                for (i, chunk) in chunks.iter().enumerate() {
                    out.extend(s.push(chunk, i + 1 == chunks.len()));
                }
                if chunks.is_empty() {
                    out.extend(s.push(b"", true));
                }
                assert_eq!(out, want, "split at {at}, size {size}");
                assert_eq!(s.removed, 1);
            }
        }
    }

    #[test]
    fn a_stream_without_a_usage_chunk_passes_unchanged_including_an_unterminated_tail() {
        let stream = b"data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\ndata: {\"choi";
        let mut s = UsageChunkStripper::new(1 << 20);
        let mut out = s.push(&stream[..10], false);
        out.extend(s.push(&stream[10..], true));
        assert_eq!(out, stream);
        assert_eq!(s.removed, 0);
    }
}
