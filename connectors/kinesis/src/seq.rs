//! Kinesis sequence numbers: decimal integers of up to 128 digits, wider than any machine
//! integer, so they are compared as big integers written in decimal (length first, then digit
//! by digit), never as plain strings ("9" < "10"). `Offset::Text` orders the same way, which is
//! what lets exactly-once sinks drop records at or before their checkpoint.

use std::cmp::Ordering;

/// True when `text` is a sequence number: decimal digits, no sign, no leading zero (but "0").
pub fn is_sequence_number(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 129
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'))
}

/// Numeric order of two sequence numbers (leading zeros ignored).
pub fn compare(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::Offset;

    #[test]
    fn compares_as_big_integers() {
        assert_eq!(compare("9", "10"), Ordering::Less);
        assert_eq!(compare("10", "9"), Ordering::Greater);
        let a = "49590338271490256608559692538361571095921575989136588898";
        let b = "49590338271490256608559692540925702759324208523137515618";
        assert_eq!(compare(a, b), Ordering::Less);
        assert_eq!(compare(b, b), Ordering::Equal);
        // Wider than u128 (39 digits), as real sequence numbers are.
        let wide = format!("1{}", "0".repeat(60));
        let narrower = "9".repeat(60);
        assert_eq!(compare(&narrower, &wide), Ordering::Less);
        assert_eq!(compare("007", "7"), Ordering::Equal);
    }

    #[test]
    fn offsets_of_sequence_numbers_order_like_the_numbers() {
        let pairs = [
            ("9", "10"),
            ("99", "100"),
            (
                "49590338271490256608559692538361571095921575989136588898",
                "49590338271490256608559692540925702759324208523137515618",
            ),
        ];
        for (lo, hi) in pairs {
            assert!(
                Offset::Text(lo.into()) < Offset::Text(hi.into()),
                "{lo} < {hi}"
            );
            assert_eq!(compare(lo, hi), Ordering::Less);
        }
    }

    #[test]
    fn recognises_sequence_numbers() {
        assert!(is_sequence_number("0"));
        assert!(is_sequence_number(
            "4959033827149025660855969253836157109592157598913658889"
        ));
        assert!(!is_sequence_number(""));
        assert!(!is_sequence_number("012"));
        assert!(!is_sequence_number("-1"));
        assert!(!is_sequence_number("12a"));
    }
}
