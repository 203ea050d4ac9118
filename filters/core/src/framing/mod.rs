//! Stream framing shared by every filter: SSE, AWS event-stream, JSON-array and NDJSON.
