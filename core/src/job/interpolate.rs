//! `${env:VAR}` and `${file:PATH}` in string values, so secrets and endpoints stay out of job
//! files. `$${` escapes a literal `${`.

use std::path::Path;

use super::path::{ConfigIssue, FieldPath};

/// Replace references in every string of `value`, recursively.
pub(crate) fn interpolate(
    value: &mut toml::Value,
    path: &FieldPath,
    base_dir: &Path,
    issues: &mut Vec<ConfigIssue>,
) {
    match value {
        toml::Value::String(s) if s.contains("${") => match expand(s, base_dir) {
            Ok(new) => *s = new,
            Err(msg) => issues.push(ConfigIssue::new(path.clone(), msg)),
        },
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate(item, &path.index(i), base_dir, issues);
            }
        }
        toml::Value::Table(table) => interpolate_table(table, path, base_dir, issues),
        _ => {}
    }
}

/// [`interpolate`] over every value of a table.
pub(crate) fn interpolate_table(
    table: &mut toml::Table,
    path: &FieldPath,
    base_dir: &Path,
    issues: &mut Vec<ConfigIssue>,
) {
    for (k, v) in table.iter_mut() {
        interpolate(v, &path.key(k.clone()), base_dir, issues);
    }
}

fn expand(s: &str, base_dir: &Path) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(r) = rest.strip_prefix("$${") {
            out.push_str("${");
            rest = r;
        } else if let Some(r) = rest.strip_prefix("${") {
            let end = r
                .find('}')
                .ok_or_else(|| format!("unterminated `${{` in {s:?}"))?;
            out.push_str(&resolve(&r[..end], base_dir)?);
            rest = &r[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn resolve(reference: &str, base_dir: &Path) -> Result<String, String> {
    if let Some(var) = reference.strip_prefix("env:") {
        let (name, default) = match var.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (var, None),
        };
        match (std::env::var(name), default) {
            (Ok(v), _) => Ok(v),
            (Err(_), Some(d)) => Ok(d.to_string()),
            (Err(_), None) => Err(format!(
                "environment variable {name} is not set (referenced as ${{env:{name}}}; use ${{env:{name}:-default}} for a default)"
            )),
        }
    } else if let Some(file) = reference.strip_prefix("file:") {
        let p = base_dir.join(file);
        std::fs::read_to_string(&p)
            .map(|v| v.trim_end_matches(['\n', '\r']).to_string())
            .map_err(|e| {
                format!(
                    "cannot read {} (referenced as ${{file:{file}}}): {e}",
                    p.display()
                )
            })
    } else {
        Err(format!(
            "unknown reference ${{{reference}}}: use ${{env:VAR}} or ${{file:PATH}}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_env_file_and_escape() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), "hunter2\n").unwrap();
        // SAFETY-free: set_var is unsafe in edition 2024; use a variable the test process owns.
        let got = expand(
            "a=${env:SLUICE_NO_SUCH_VAR:-dflt} b=${file:secret} c=$${x}",
            dir.path(),
        )
        .unwrap();
        assert_eq!(got, "a=dflt b=hunter2 c=${x}");
    }

    #[test]
    fn missing_env_is_an_error() {
        let err = expand("${env:SLUICE_DEFINITELY_UNSET}", Path::new(".")).unwrap_err();
        assert!(err.contains("SLUICE_DEFINITELY_UNSET is not set"), "{err}");
    }
}
