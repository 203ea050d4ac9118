//! The one sampling decision per request.
//!
//! Every filter and the access log must agree on whether a successful request is logged in
//! full, so the decision is a pure function of the request id and the configured rate: the first
//! eight bytes of SHA-256(request id), read as a number in `[0, 2^64)`, compared with
//! `rate * 2^64`. The correlation filter writes the decision to filter state
//! (`llmobs.sampled`); other filters read it instead of deciding again. Hashing (rather than
//! reading the id's own digits) keeps the decision uniform for client-chosen ids such as
//! `req-1`, `req-2`.

use sha2::{Digest, Sha256};

pub fn is_sampled(request_id: &str, rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    if rate <= 0.0 || rate.is_nan() {
        return false;
    }
    let digest = Sha256::digest(request_id.as_bytes());
    let mut head = [0u8; 8];
    head.copy_from_slice(digest.get(..8).unwrap_or(&[0u8; 8]));
    let point = u64::from_be_bytes(head);
    // `as` saturates for floats; 2^64 * rate < 2^64 here because rate < 1.
    let threshold = (rate * 18_446_744_073_709_551_616.0) as u64;
    point < threshold
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_one_samples_everything_and_rate_zero_nothing() {
        for i in 0..100 {
            let id = format!("req-{i}");
            assert!(is_sampled(&id, 1.0));
            assert!(!is_sampled(&id, 0.0));
        }
    }

    #[test]
    fn the_decision_is_the_same_every_time_for_the_same_id() {
        for i in 0..100 {
            let id = format!("id-{i}");
            assert_eq!(is_sampled(&id, 0.37), is_sampled(&id, 0.37));
        }
    }

    #[test]
    fn a_request_sampled_at_a_low_rate_is_sampled_at_every_higher_rate() {
        for i in 0..1000 {
            let id = format!("id-{i}");
            if is_sampled(&id, 0.1) {
                assert!(is_sampled(&id, 0.5));
            }
        }
    }

    #[test]
    fn the_sampled_fraction_of_sequential_ids_matches_the_rate() {
        // 20,000 ids at 0.25: mean 5,000, standard deviation about 61; allow 5 deviations.
        let n = 20_000;
        let hits = (0..n).filter(|i| is_sampled(&format!("req-{i}"), 0.25)).count();
        assert!((4_695..=5_305).contains(&hits), "{hits}");
    }
}
