//! PII and secret detection (docs/filters/pii-redaction.md).
