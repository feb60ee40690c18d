use super::*;

const GOOD: &[&str] = &[
    "null",
    "true",
    "false",
    "0",
    "-0",
    "1",
    "-12.5e+3",
    "1E-2",
    "0.0",
    // Out of a 64-bit float's range, still JSON (RFC 8259 §6 leaves range to implementations).
    "1e999",
    "-1e999",
    "123456789012345678901234567890",
    "\"\"",
    "\"plain\"",
    "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
    "\"\\u00e9\\u20AC\"",
    "\"\\ud83d\\ude00\"",
    "\"é€😀\"",
    "\"\u{7f}\"",
    "[]",
    "{}",
    " [ 1 , { \"a\" : [ null ] } ] ",
    "\t\r\n{\"a\":{\"b\":{}}}\n",
    "{\"\":0,\"\":1}",
    "[[[\"]]]\"]]]",
];

/// Input, and the exact error.
const BAD: &[(&[u8], &str)] = &[
    (b"", "no value at byte 0"),
    (b"  \n", "no value at byte 3"),
    (
        b"\xef\xbb\xbf{}",
        "a byte order mark (not allowed in JSON) at byte 0",
    ),
    (b"{\"a\":\"\xff\xfe\"}", "invalid UTF-8 at byte 6"),
    (b"\xc3", "invalid UTF-8 at byte 0"),
    (b"[1]\xff", "invalid UTF-8 at byte 3"),
    (b"\"\xed\xa0\x80\"", "invalid UTF-8 at byte 1"),
    (
        b"\"a\x00b\"",
        "control character U+0000 in a string (escape it) at byte 2",
    ),
    (
        b"\"a\tb\"",
        "control character U+0009 in a string (escape it) at byte 2",
    ),
    (
        b"\"a\nb\"",
        "control character U+000A in a string (escape it) at byte 2",
    ),
    (b"\"\\x\"", "invalid escape in a string at byte 1"),
    (b"\"\\u12g4\"", "invalid escape in a string at byte 5"),
    (
        b"\"\\ud800\"",
        "lone surrogate \\u escape in a string at byte 1",
    ),
    (
        b"\"\\udc00\"",
        "lone surrogate \\u escape in a string at byte 1",
    ),
    (
        b"\"\\ud800\\u0041\"",
        "lone surrogate \\u escape in a string at byte 1",
    ),
    (
        b"\"x\\ud800\\n\"",
        "lone surrogate \\u escape in a string at byte 2",
    ),
    (
        b"\"\\ud800",
        "lone surrogate \\u escape in a string at byte 1",
    ),
    (b"\"abc", "unexpected end of input at byte 4"),
    (b"\"\\u12", "unexpected end of input at byte 5"),
    (b"01", "invalid number: a leading zero at byte 1"),
    (b"-", "unexpected end of input at byte 1"),
    (b"-a", "invalid number: a digit at byte 1"),
    (b"+1", "unexpected '+', expected a value, at byte 0"),
    (b".5", "unexpected '.', expected a value, at byte 0"),
    (b"1.", "unexpected end of input at byte 2"),
    (b"1.e3", "invalid number: a digit after '.' at byte 2"),
    (b"1e+", "unexpected end of input at byte 3"),
    (b"1ex", "invalid number: a digit in the exponent at byte 2"),
    (b"NaN", "unexpected 'N', expected a value, at byte 0"),
    (b"tru", "unexpected end of input at byte 3"),
    (b"trUe", "unexpected 'U', expected true, at byte 2"),
    (b"nulll", "more than one value (trailing data) at byte 4"),
    (b"{} {}", "more than one value (trailing data) at byte 3"),
    (b"1 2", "more than one value (trailing data) at byte 2"),
    (b"[1,]", "unexpected ']', expected a value, at byte 3"),
    (b"[1 2]", "unexpected '2', expected ',' or ']', at byte 3"),
    (b"[1}", "unexpected '}', expected ',' or ']', at byte 2"),
    (
        b"{\"a\":1]",
        "unexpected ']', expected ',' or '}', at byte 6",
    ),
    (b"{\"a\" 1}", "unexpected '1', expected ':', at byte 5"),
    (
        b"{1:2}",
        "unexpected '1', expected a string key or '}', at byte 1",
    ),
    (
        b"{\"a\":1,}",
        "unexpected '}', expected a string key, at byte 7",
    ),
    (b"[", "unexpected end of input at byte 1"),
    (b"{\"a\":", "unexpected end of input at byte 5"),
    (b"]", "unexpected ']', expected a value, at byte 0"),
    (b"\xc3\xa9", "unexpected 'é', expected a value, at byte 0"),
    (
        b"[\"a\"\x0c]",
        "unexpected '\\u{c}', expected ',' or ']', at byte 4",
    ),
    (
        b"\xc2\xa0[]",
        "unexpected '\\u{a0}', expected a value, at byte 0",
    ),
];

#[test]
fn accepts_rfc_8259_json() {
    for good in GOOD {
        assert_eq!(check_json(good.as_bytes(), 10), Ok(()), "{good}");
    }
}

#[test]
fn refuses_what_is_not_json_and_says_where() {
    for (bad, expected) in BAD {
        let err = check_json(bad, 10).expect_err(&String::from_utf8_lossy(bad));
        assert_eq!(
            err.to_string(),
            *expected,
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn nesting_is_limited_without_recursion() {
    let nest = |open: &str, close: &str, n: usize| format!("{}{}", open.repeat(n), close.repeat(n));
    let max = DEFAULT_MAX_DEPTH;
    assert_eq!(check_json(nest("[", "]", max).as_bytes(), max), Ok(()));
    let objects = format!("{}0{}", "{\"a\":".repeat(max), "}".repeat(max));
    assert_eq!(check_json(objects.as_bytes(), max), Ok(()));
    let err = check_json(nest("[", "]", max + 1).as_bytes(), max).unwrap_err();
    assert_eq!(err.to_string(), "nesting deeper than 127 at byte 127");
    // 100,000 deep (and unclosed, and closed): refused at the limit, no stack overflow.
    for deep in [nest("[", "]", 100_000), "[".repeat(100_000)] {
        let err = check_json(deep.as_bytes(), max).unwrap_err();
        assert_eq!(err.problem, JsonProblem::TooDeep(max));
        assert_eq!(err.at, max);
    }
    // A huge limit is no problem either: one byte of stack per level, on the heap.
    assert_eq!(
        check_json(nest("[", "]", 100_000).as_bytes(), usize::MAX),
        Ok(())
    );
    // Depth 0 allows scalars only; mixed arrays and objects count alike.
    assert_eq!(check_json(b"1", 0), Ok(()));
    assert!(check_json(b"[]", 0).is_err());
    assert_eq!(check_json(b"[{\"a\":[]}]", 3), Ok(()));
    assert_eq!(
        check_json(b"[{\"a\":[]}]", 2).unwrap_err().to_string(),
        "nesting deeper than 2 at byte 6"
    );
}

#[test]
fn the_default_depth_parses_in_serde_json() {
    let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let at_limit = nest(DEFAULT_MAX_DEPTH);
    assert!(serde_json::from_str::<serde_json::Value>(&at_limit).is_ok());
    // One more is what serde_json refuses: the default is the deepest that parses.
    assert!(serde_json::from_str::<serde_json::Value>(&nest(DEFAULT_MAX_DEPTH + 1)).is_err());
}

#[test]
fn agrees_with_serde_json_on_the_tables() {
    for good in GOOD {
        let parsed = serde_json::from_str::<serde_json::Value>(good);
        assert!(parsed.is_ok() || good.contains("e999"), "{good}");
    }
    for (bad, _) in BAD {
        assert!(
            serde_json::from_slice::<serde_json::Value>(bad).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

/// Pieces of JSON, so that random picks make inputs that get past the first byte.
const PIECES: &[&str] = &[
    "[", "]", "{", "}", ",", ":", " ", "\n", "\"a\"", "\"", "\\", "\\u", "\\ud83d", "\\ude00",
    "\\u00e9", "\\n", "\\x", "d800", "0", "1", "-", ".", "e", "E", "+", "1e999", "-0.5e-3", "01",
    "true", "false", "null", "nul", "é", "\u{feff}", "\u{0}", "\t", "\r", "x", "\u{7f}",
];

/// Where [`check_json`] and serde_json may disagree, by design: numbers out of the range of
/// an `f64` are JSON (serde_json's `Value` refuses them).
fn agrees_with_serde_json(input: &[u8]) {
    let ours = check_json(input, 100);
    if let Err(e) = &ours {
        assert!(e.at <= input.len(), "{e} in {} bytes", input.len());
        if e.problem == JsonProblem::TooDeep(100) {
            return;
        }
    }
    let theirs = serde_json::from_slice::<serde_json::Value>(input);
    match (&ours, &theirs) {
        (Ok(()), Ok(_)) | (Err(_), Err(_)) => {}
        (Ok(()), Err(e)) => assert!(
            e.to_string().starts_with("number out of range"),
            "accepted, serde_json says {e}: {:?}",
            String::from_utf8_lossy(input)
        ),
        (Err(e), Ok(_)) => panic!(
            "refused ({e}), serde_json accepts: {:?}",
            String::from_utf8_lossy(input)
        ),
    }
}

/// Fuzz (bolero; ~1 s under `cargo test`, `scripts/fuzz.sh core <harness> <seconds>` for
/// longer): any bytes.
#[test]
fn fuzz_check_json_bytes() {
    bolero::check!().for_each(agrees_with_serde_json);
}

/// Fuzz: inputs made of JSON pieces (random bytes are rarely more than one token of JSON).
#[test]
fn fuzz_check_json_pieces() {
    bolero::check!()
        .with_type::<Vec<u8>>()
        .for_each(|picks: &Vec<u8>| {
            let input: String = picks
                .iter()
                .map(|&p| PIECES[usize::from(p) % PIECES.len()])
                .collect();
            agrees_with_serde_json(input.as_bytes());
        });
}
