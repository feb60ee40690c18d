//! The references in docs/ are generated from the config types; keep them current, and keep the
//! job-file JSON Schema true to what the loader accepts.

mod common;

fn stdout_of(args: &[&str]) -> String {
    let out = common::run(args);
    assert!(out.status.success(), "sluice {args:?} failed");
    String::from_utf8(out.stdout).unwrap()
}

fn doc(name: &str) -> String {
    std::fs::read_to_string(format!("{}/docs/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn connector_reference_is_current() {
    let generated = stdout_of(&["connectors"]);
    assert!(
        doc("connectors.md").contains(&generated),
        "docs/connectors.md is out of date: run scripts/gen-docs.sh"
    );
}

#[test]
fn job_file_reference_and_schema_are_current() {
    let reference = stdout_of(&["schema", "--reference"]);
    assert!(reference.contains("[delivery]:") && reference.contains("commit_interval"));
    assert!(
        doc("job-file.md").contains(&reference),
        "docs/job-file.md is out of date: run scripts/gen-docs.sh"
    );
    assert_eq!(
        stdout_of(&["schema"]),
        doc("job.schema.json"),
        "docs/job.schema.json is out of date: run scripts/gen-docs.sh"
    );
}

fn schema_validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(&stdout_of(&["schema"])).unwrap();
    jsonschema::validator_for(&schema).expect("the job schema is a valid JSON Schema")
}

fn as_json(toml_text: &str) -> serde_json::Value {
    let table: toml::Table = toml::from_str(toml_text).unwrap();
    serde_json::to_value(table).unwrap()
}

#[test]
fn the_default_job_and_examples_match_the_schema() {
    let validator = schema_validator();
    let root = env!("CARGO_MANIFEST_DIR");
    let mut jobs = vec![format!("{root}/connector.toml")];
    if let Ok(dir) = std::fs::read_dir(format!("{root}/examples")) {
        jobs.extend(
            dir.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .map(|p| p.display().to_string()),
        );
    }
    for job in jobs {
        let value = as_json(&std::fs::read_to_string(&job).unwrap());
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{job} does not match the schema: {errors:#?}"
        );
    }
}

#[test]
fn the_schema_refuses_what_the_loader_refuses() {
    let validator = schema_validator();
    let good = r#"
        api_version = 1
        name = "j"
        [source]
        type = "datagen"
        count = 10
        [[sinks]]
        type = "file"
        path = "out.jsonl"
        when = { header = "route", equals = "alert" }
        batch = { max_records = 10, max_wait = "1s" }
    "#;
    assert!(validator.is_valid(&as_json(good)));
    for bad in [
        good.replace("path = ", "pth = "),
        good.replace("type = \"file\"", "type = \"fiel\""),
        good.replace("api_version = 1", "api_version = 2"),
        good.replace("count = 10", "count = \"many\""),
        good.replace("max_records", "max_recs"),
        good.replace("name = \"j\"", "name = \"../j\""),
    ] {
        assert!(!validator.is_valid(&as_json(&bad)), "accepted: {bad}");
    }
}
