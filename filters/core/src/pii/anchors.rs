//! The gate in front of the two literal-prefixed passes: secrets (`Pass::Tokens`) and bearer
//! tokens (`Pass::Bearer`).
//!
//! Natively the `regex` crate finds their literal prefixes with SIMD (Teddy, memchr), but on
//! wasm32 it has neither: the tokens pass then tests every byte and the bearer pass (whose
//! case-insensitive prefix is not a literal) stops at every space to search backwards; inside
//! Envoy's V8 those two passes took about 70 % of the scan time (docs/benchmarks.md, per-pass
//! table). Instead, one byte loop finds the positions where a candidate can start (every match
//! of these patterns starts with one of the prefixes below), and the regexes run only there.
//! The results are the same as whole-text passes (`the_gates_change_no_result`).

/// Where a secret candidate can start: the literal prefixes of `Pass::Tokens`.
fn token_starts_at(text: &[u8], i: usize) -> bool {
    let rest = text.get(i..).unwrap_or_default();
    let byte = |k: usize| rest.get(k).copied();
    match rest.first() {
        Some(b'-') => rest.starts_with(b"-----BEGIN "),
        Some(b'e') => matches!((byte(1), byte(2)), (Some(b'y'), Some(b'J' | b'A')) | (Some(b'w'), Some(b'o' | b'0'))),
        Some(b's') => rest.starts_with(b"sk-"),
        Some(b'A') => rest.starts_with(b"AKIA") || rest.starts_with(b"ASIA") || rest.starts_with(b"AIza"),
        Some(b'g') => {
            (rest.starts_with(b"gh")
                && matches!(byte(2), Some(b'p' | b'o' | b'u' | b's' | b'r'))
                && byte(3) == Some(b'_'))
                || rest.starts_with(b"github_pat_")
        }
        Some(b'x') => rest.starts_with(b"xox") && matches!(byte(3), Some(b'a' | b'b' | b'p' | b'r' | b's')),
        _ => false,
    }
}

fn bearer_starts_at(text: &[u8], i: usize) -> bool {
    text.get(i..i + 6).is_some_and(|w| w.eq_ignore_ascii_case(b"bearer"))
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// The high bit of every byte of `v` that is zero (exact for the lowest zero byte, which is all
/// the any-test below needs).
fn zero_bytes(v: u64) -> u64 {
    v.wrapping_sub(LO) & !v & HI
}

fn eq_bytes(x: u64, c: u8) -> u64 {
    zero_bytes(x ^ LO.wrapping_mul(u64::from(c)))
}

/// The bytes of an 8-byte word that may be one every candidate has at a fixed offset from its
/// start: `-` (`-----BEGIN`, `sk-`, `xox?-`), `_` (`gh?_`, `github_pat_`), `A` (`AKIA`, `ASIA`,
/// `AIza`, `eyA`), `J` (`eyJ`), `w` (`ewo`, `ew0`), `b`/`B` (`bearer`): the high bit of each such
/// byte (a superset: a byte above a real one may be flagged too; [`at_anchor`] checks). About
/// one word in five of English prose holds one; the rest are skipped eight bytes at a time.
fn anchor_bytes(x: u64) -> u64 {
    let folded = x | 0x2020_2020_2020_2020;
    eq_bytes(x, b'-')
        | eq_bytes(x, b'_')
        | eq_bytes(x, b'A')
        | eq_bytes(x, b'J')
        | eq_bytes(x, b'w')
        | eq_bytes(folded, b'b')
}

/// Candidate starts implied by the anchor byte at `i`.
fn at_anchor(text: &[u8], i: usize, tokens: &mut Vec<usize>, bearer: &mut Vec<usize>) {
    let offsets: &[usize] = match text.get(i) {
        Some(b'-') => &[0, 2, 4],
        Some(b'_') => &[3, 6],
        Some(b'A') => &[0, 2],
        Some(b'J') => &[2],
        Some(b'w') => &[1],
        Some(b'b' | b'B') => {
            if bearer_starts_at(text, i) {
                bearer.push(i);
            }
            return;
        }
        _ => return,
    };
    for &back in offsets {
        if let Some(start) = i.checked_sub(back) {
            if token_starts_at(text, start) {
                tokens.push(start);
            }
        }
    }
}

/// The end of the run of bytes a token or bearer candidate starting at `start` can span (every
/// byte of those patterns is a letter, digit, space, tab or one of `._~+/=-`). The regex runs
/// only up to it: the same match, without searching the rest of the text for a later one.
pub(super) fn run_end(text: &[u8], start: usize) -> usize {
    let rest = text.get(start..).unwrap_or_default();
    let span = rest
        .iter()
        .position(|&b| {
            !(b.is_ascii_alphanumeric() || matches!(b, b' ' | b'\t' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=' | b'-'))
        })
        .unwrap_or(rest.len());
    start + span
}

/// Candidate start positions in `text`, ascending: (tokens, bearer).
pub(super) fn starts(text: &[u8]) -> (Vec<usize>, Vec<usize>) {
    let (mut tokens, mut bearer) = (Vec::new(), Vec::new());
    let mut base = 0;
    // Wasm SIMD (the filters are built with `+simd128`, .cargo/config.toml): sixteen bytes per
    // step, about three times faster in V8 than the eight-byte words below.
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        use core::arch::wasm32::{i8x16_bitmask, i8x16_eq, u8x16, u8x16_splat, v128_or};
        let mut blocks = text.chunks_exact(16);
        for block in blocks.by_ref() {
            let b: [u8; 16] = block.try_into().unwrap_or([0; 16]);
            let v = u8x16(
                b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15],
            );
            let folded = v128_or(v, u8x16_splat(0x20));
            let hits = v128_or(
                v128_or(
                    v128_or(i8x16_eq(v, u8x16_splat(b'-')), i8x16_eq(v, u8x16_splat(b'_'))),
                    i8x16_eq(v, u8x16_splat(b'A')),
                ),
                v128_or(
                    v128_or(i8x16_eq(v, u8x16_splat(b'J')), i8x16_eq(v, u8x16_splat(b'w'))),
                    i8x16_eq(folded, u8x16_splat(b'b')),
                ),
            );
            let mut flagged = i8x16_bitmask(hits);
            while flagged != 0 {
                at_anchor(text, base + flagged.trailing_zeros() as usize, &mut tokens, &mut bearer);
                flagged &= flagged - 1;
            }
            base += 16;
        }
    }
    let mut words = text.get(base..).unwrap_or_default().chunks_exact(8);
    for word in words.by_ref() {
        let mut flagged = anchor_bytes(u64::from_le_bytes(word.try_into().unwrap_or([0; 8])));
        while flagged != 0 {
            // Little-endian: the lowest flagged bit is the first flagged byte.
            let byte = (flagged.trailing_zeros() / 8) as usize;
            at_anchor(text, base + byte, &mut tokens, &mut bearer);
            flagged &= flagged - 1;
        }
        base += 8;
    }
    for i in base..base + words.remainder().len() {
        at_anchor(text, i, &mut tokens, &mut bearer);
    }
    // Anchors at different offsets can name starts out of order (`-` of `sk-` after the `w` of
    // a later `ewo` cannot, but `_` of `github_pat_` can follow an `A`).
    tokens.sort_unstable();
    tokens.dedup();
    (tokens, bearer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_literal_prefix_is_an_anchor_and_prose_is_not() {
        let text =
            b"ask sk-abc, AKIAX ASIAY AIzaZ ghp_1 github_pat_2 xoxb-3 eyJa ewo0 -----BEGIN RSA, Bearer x BEARER y";
        let (tokens, bearer) = starts(text);
        assert_eq!(tokens.len(), 10);
        assert_eq!(bearer.len(), 2);
        let (tokens, bearer) = starts(b"the key is easy: ask gh users at xbox-360 - no bear here");
        assert!(tokens.is_empty() && bearer.is_empty());
    }
}
