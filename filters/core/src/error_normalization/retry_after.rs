//! When to retry, from whichever header or body field the provider uses.
//!
//! In order: `retry-after-ms` (OpenAI), `retry-after` (seconds, or an HTTP-date: RFC 9110
//! 10.2.3), the larger of OpenAI's `x-ratelimit-reset-requests` / `-tokens` (durations such as
//! `6m0s`), the latest of Anthropic's `anthropic-ratelimit-*-reset` (RFC 3339 instants), and a
//! Gemini `google.rpc.RetryInfo.retryDelay` in the error body (`"30s"`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Header lookup, so this module does not depend on how headers are stored.
pub trait Headers {
    fn get(&self, name: &str) -> Option<String>;
}

pub fn retry_after_ms(headers: &dyn Headers, gemini_retry_delay: Option<&str>, now_ns: u64) -> Option<u64> {
    if let Some(ms) = headers.get("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok()) {
        return non_negative_ms(ms);
    }
    if let Some(value) = headers.get("retry-after") {
        let value = value.trim();
        if let Ok(seconds) = value.parse::<f64>() {
            return non_negative_ms(seconds * 1000.0);
        }
        if let Ok(at) = httpdate::parse_http_date(value) {
            return Some(until(at, now_ns));
        }
    }
    let resets = ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"]
        .iter()
        .filter_map(|h| headers.get(h))
        .filter_map(|v| duration_ms(&v))
        .max();
    if resets.is_some() {
        return resets;
    }
    let anthropic = [
        "anthropic-ratelimit-requests-reset",
        "anthropic-ratelimit-tokens-reset",
        "anthropic-ratelimit-input-tokens-reset",
        "anthropic-ratelimit-output-tokens-reset",
    ]
    .iter()
    .filter_map(|h| headers.get(h))
    .filter_map(|v| humantime::parse_rfc3339_weak(v.trim()).ok())
    .map(|at| until(at, now_ns))
    .max();
    if anthropic.is_some() {
        return anthropic;
    }
    gemini_retry_delay.and_then(duration_ms)
}

fn non_negative_ms(ms: f64) -> Option<u64> {
    (ms.is_finite() && ms >= 0.0).then(|| ms.round() as u64)
}

/// Go-style durations (`1s`, `6m0s`, `20ms`, `1m30.5s`), as OpenAI and Gemini send them.
pub fn duration_ms(value: &str) -> Option<u64> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let mut total = 0.0f64;
    let mut rest = value;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (number, tail) = rest.split_at(number_len);
        let number: f64 = number.parse().ok()?;
        let unit_len = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let factor = match unit {
            "h" => 3_600_000.0,
            "m" => 60_000.0,
            "s" => 1000.0,
            "ms" => 1.0,
            "us" | "µs" => 0.001,
            "ns" => 0.000_001,
            _ => return None,
        };
        total += number * factor;
        rest = tail;
    }
    non_negative_ms(total)
}

fn until(at: SystemTime, now_ns: u64) -> u64 {
    let now = UNIX_EPOCH + Duration::from_nanos(now_ns);
    at.duration_since(now).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Map(HashMap<&'static str, &'static str>);

    impl Headers for Map {
        fn get(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|v| (*v).to_string())
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> Map {
        Map(pairs.iter().copied().collect())
    }

    const NOW: u64 = 1_700_000_000 * 1_000_000_000;

    #[test]
    fn retry_after_seconds_and_milliseconds() {
        assert_eq!(retry_after_ms(&headers(&[("retry-after", "20")]), None, NOW), Some(20_000));
        assert_eq!(retry_after_ms(&headers(&[("retry-after", "1.5")]), None, NOW), Some(1_500));
        assert_eq!(retry_after_ms(&headers(&[("retry-after-ms", "250"), ("retry-after", "9")]), None, NOW), Some(250));
        assert_eq!(retry_after_ms(&headers(&[("retry-after", "-3")]), None, NOW), None);
    }

    #[test]
    fn retry_after_as_an_http_date_is_relative_to_the_host_clock() {
        // 2023-11-14T22:13:20Z is NOW; ten seconds later:
        let h = headers(&[("retry-after", "Tue, 14 Nov 2023 22:13:30 GMT")]);
        assert_eq!(retry_after_ms(&h, None, NOW), Some(10_000));
        let past = headers(&[("retry-after", "Tue, 14 Nov 2023 22:13:00 GMT")]);
        assert_eq!(retry_after_ms(&past, None, NOW), Some(0));
    }

    #[test]
    fn openai_reset_durations_take_the_larger() {
        let h = headers(&[("x-ratelimit-reset-requests", "1s"), ("x-ratelimit-reset-tokens", "6m0s")]);
        assert_eq!(retry_after_ms(&h, None, NOW), Some(360_000));
    }

    #[test]
    fn anthropic_reset_instants_are_relative_to_now() {
        let h = headers(&[("anthropic-ratelimit-requests-reset", "2023-11-14T22:13:25Z")]);
        assert_eq!(retry_after_ms(&h, None, NOW), Some(5_000));
    }

    #[test]
    fn gemini_retry_delay_comes_from_the_body() {
        assert_eq!(retry_after_ms(&headers(&[]), Some("30s"), NOW), Some(30_000));
        assert_eq!(retry_after_ms(&headers(&[]), Some("1.5s"), NOW), Some(1_500));
        assert_eq!(retry_after_ms(&headers(&[]), None, NOW), None);
    }

    #[test]
    fn durations_parse_like_go() {
        for (text, ms) in [
            ("20ms", Some(20)),
            ("1m30.5s", Some(90_500)),
            ("2h", Some(7_200_000)),
            ("", None),
            ("5x", None),
            ("s", None),
        ] {
            assert_eq!(duration_ms(text), ms, "{text}");
        }
    }
}
