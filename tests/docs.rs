//! The connector reference in docs/ is generated from the config types; keep it current.

mod common;

#[test]
fn connector_reference_is_current() {
    let out = common::run(&["connectors"]);
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).unwrap();
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/connectors.md"))
        .unwrap();
    assert!(
        doc.contains(&generated),
        "docs/connectors.md is out of date: run scripts/gen-docs.sh"
    );
}
