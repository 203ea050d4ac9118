//! The one documented error taxonomy (`error.type`), as semconv asks: a low-cardinality list,
//! the same for every provider. Each class carries whether a client should retry.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorType {
    RateLimit,
    QuotaExhausted,
    ContextLengthExceeded,
    ContentFilter,
    InvalidApiKey,
    PermissionDenied,
    ModelNotFound,
    BadRequest,
    RequestTooLarge,
    Overloaded,
    Timeout,
    UpstreamUnavailable,
    StreamInterrupted,
    Internal,
    Other,
}

impl ErrorType {
    pub const ALL: [ErrorType; 15] = [
        ErrorType::RateLimit,
        ErrorType::QuotaExhausted,
        ErrorType::ContextLengthExceeded,
        ErrorType::ContentFilter,
        ErrorType::InvalidApiKey,
        ErrorType::PermissionDenied,
        ErrorType::ModelNotFound,
        ErrorType::BadRequest,
        ErrorType::RequestTooLarge,
        ErrorType::Overloaded,
        ErrorType::Timeout,
        ErrorType::UpstreamUnavailable,
        ErrorType::StreamInterrupted,
        ErrorType::Internal,
        ErrorType::Other,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ErrorType::RateLimit => "rate_limit",
            ErrorType::QuotaExhausted => "quota_exhausted",
            ErrorType::ContextLengthExceeded => "context_length_exceeded",
            ErrorType::ContentFilter => "content_filter",
            ErrorType::InvalidApiKey => "invalid_api_key",
            ErrorType::PermissionDenied => "permission_denied",
            ErrorType::ModelNotFound => "model_not_found",
            ErrorType::BadRequest => "bad_request",
            ErrorType::RequestTooLarge => "request_too_large",
            ErrorType::Overloaded => "overloaded",
            ErrorType::Timeout => "timeout",
            ErrorType::UpstreamUnavailable => "upstream_unavailable",
            ErrorType::StreamInterrupted => "stream_interrupted",
            ErrorType::Internal => "internal",
            ErrorType::Other => "_OTHER",
        }
    }

    /// Whether the same request may succeed later. A quota that is used up, a bad key or a
    /// prompt that is too long will not get better by retrying.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorType::RateLimit
                | ErrorType::Overloaded
                | ErrorType::Timeout
                | ErrorType::UpstreamUnavailable
                | ErrorType::StreamInterrupted
                | ErrorType::Internal
        )
    }

    /// The class an HTTP status alone suggests, when nothing more specific is known.
    pub fn from_status(status: u16) -> ErrorType {
        match status {
            400 | 422 => ErrorType::BadRequest,
            401 => ErrorType::InvalidApiKey,
            402 => ErrorType::QuotaExhausted,
            403 => ErrorType::PermissionDenied,
            404 => ErrorType::ModelNotFound,
            408 | 504 => ErrorType::Timeout,
            413 => ErrorType::RequestTooLarge,
            429 => ErrorType::RateLimit,
            502 | 503 => ErrorType::UpstreamUnavailable,
            529 => ErrorType::Overloaded,
            500..=599 => ErrorType::Internal,
            400..=499 => ErrorType::BadRequest,
            _ => ErrorType::Other,
        }
    }
}

/// Who produced the failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// The provider said so (its status, body or stream).
    Upstream,
    /// Envoy or the mesh produced it (timeouts, no healthy upstream, overflow, local limits).
    Gateway,
}

impl Origin {
    pub fn label(self) -> &'static str {
        match self {
            Origin::Upstream => "upstream",
            Origin::Gateway => "gateway",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_unique() {
        let mut labels: Vec<&str> = ErrorType::ALL.iter().map(|t| t.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), ErrorType::ALL.len());
    }

    #[test]
    fn an_exhausted_quota_is_never_retryable_and_a_rate_limit_is() {
        assert!(!ErrorType::QuotaExhausted.retryable());
        assert!(ErrorType::RateLimit.retryable());
        assert!(ErrorType::Overloaded.retryable());
        assert!(!ErrorType::ContextLengthExceeded.retryable());
    }

    #[test]
    fn status_fallbacks_cover_the_documented_codes() {
        for (status, t) in [
            (400, ErrorType::BadRequest),
            (401, ErrorType::InvalidApiKey),
            (402, ErrorType::QuotaExhausted),
            (403, ErrorType::PermissionDenied),
            (404, ErrorType::ModelNotFound),
            (408, ErrorType::Timeout),
            (409, ErrorType::BadRequest),
            (413, ErrorType::RequestTooLarge),
            (429, ErrorType::RateLimit),
            (500, ErrorType::Internal),
            (502, ErrorType::UpstreamUnavailable),
            (503, ErrorType::UpstreamUnavailable),
            (504, ErrorType::Timeout),
            (529, ErrorType::Overloaded),
            (599, ErrorType::Internal),
            (200, ErrorType::Other),
        ] {
            assert_eq!(ErrorType::from_status(status), t, "{status}");
        }
    }
}
