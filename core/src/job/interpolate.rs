//! `${env:VAR}` and `${file:PATH}` in string values, so secrets and endpoints stay out of job
//! files. `$${` escapes a literal `${`. What a job may read is an [`Interpolation`] policy: all
//! of it for the operator's own job files, only what the operator allows for jobs submitted to
//! the worker's API. The values read are remembered ([`Expanded`]) so that no error message
//! quotes them.

use std::path::{Path, PathBuf};

use super::path::{ConfigIssue, FieldPath};

/// Which references a job may expand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Interpolation {
    /// Any environment variable and any readable file (job files the operator wrote).
    All,
    /// Only these: environment variables by name or `PREFIX_*`, and files under these
    /// directories (jobs submitted through the worker's API). Empty: none.
    Only {
        /// Variable names; a trailing `*` matches any suffix.
        env: Vec<String>,
        /// Directories (canonical) whose files may be read.
        files: Vec<PathBuf>,
    },
}

impl Interpolation {
    /// Nothing may be read.
    pub fn none() -> Self {
        Interpolation::Only {
            env: Vec::new(),
            files: Vec::new(),
        }
    }

    /// Parse `env:PREFIX_*,env:NAME,file:/dir/` (the worker's `--allow-interpolation`).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let (mut env, mut files) = (Vec::new(), Vec::new());
        for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            if let Some(name) = item.strip_prefix("env:") {
                let stem = name.strip_suffix('*').unwrap_or(name);
                if stem.is_empty() && !name.is_empty() {
                    return Err("`env:*` would allow the whole environment: name a prefix".into());
                }
                if name.is_empty() || stem.contains('*') {
                    return Err(format!("{item:?}: expected env:NAME or env:PREFIX_*"));
                }
                env.push(name.to_string());
            } else if let Some(dir) = item.strip_prefix("file:") {
                let dir = std::fs::canonicalize(dir)
                    .map_err(|e| format!("{item:?}: the directory cannot be used: {e}"))?;
                files.push(dir);
            } else {
                return Err(format!(
                    "{item:?}: expected env:NAME, env:PREFIX_* or file:/dir/"
                ));
            }
        }
        Ok(Interpolation::Only { env, files })
    }

    fn allows_env(&self, name: &str) -> bool {
        match self {
            Interpolation::All => true,
            Interpolation::Only { env, .. } => env.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => p == name,
            }),
        }
    }

    fn allows_file(&self, path: &Path) -> bool {
        match self {
            Interpolation::All => true,
            // Canonical, so `..` and symbolic links cannot leave an allowed directory.
            Interpolation::Only { files, .. } => std::fs::canonicalize(path)
                .is_ok_and(|p| files.iter().any(|dir| p.starts_with(dir))),
        }
    }
}

/// The values references expanded to, with the reference each came from.
#[derive(Clone, Debug, Default)]
pub struct Expanded(Vec<(String, String)>);

impl Expanded {
    /// `message` with every expanded value of three characters or more replaced by its
    /// reference (`${env:DB_PASSWORD}`), so an error never quotes a secret.
    pub fn redact(&self, message: &str) -> String {
        let mut out = message.to_string();
        // Longest first: a value that contains another is replaced whole.
        let mut values: Vec<&(String, String)> =
            self.0.iter().filter(|(v, _)| v.len() >= 3).collect();
        values.sort_by_key(|(v, _)| std::cmp::Reverse(v.len()));
        for (value, reference) in values {
            out = out.replace(value.as_str(), reference);
        }
        out
    }
}

/// What interpolating a job needs: where relative files resolve, what may be read, and where
/// the values read are remembered.
pub(crate) struct Interpolator<'a> {
    pub base_dir: &'a Path,
    pub policy: &'a Interpolation,
    pub expanded: Expanded,
}

impl Interpolator<'_> {
    /// Replace references in every string of `value`, recursively.
    fn value(&mut self, value: &mut toml::Value, path: &FieldPath, issues: &mut Vec<ConfigIssue>) {
        match value {
            toml::Value::String(s) if s.contains("${") => match self.expand(s) {
                Ok(new) => *s = new,
                Err(msg) => issues.push(ConfigIssue::new(path.clone(), msg)),
            },
            toml::Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.value(item, &path.index(i), issues);
                }
            }
            toml::Value::Table(table) => self.table(table, path, issues),
            _ => {}
        }
    }

    /// Replace references in every value of a table.
    pub(crate) fn table(
        &mut self,
        table: &mut toml::Table,
        path: &FieldPath,
        issues: &mut Vec<ConfigIssue>,
    ) {
        for (k, v) in table.iter_mut() {
            self.value(v, &path.key(k.clone()), issues);
        }
    }

    fn expand(&mut self, s: &str) -> Result<String, String> {
        let expanded = expand(s, self.base_dir, self.policy)?;
        self.expanded.0.extend(expanded.1);
        Ok(expanded.0)
    }
}

/// `s` with its references replaced, and each value read with its reference.
#[allow(clippy::type_complexity)]
fn expand(
    s: &str,
    base_dir: &Path,
    policy: &Interpolation,
) -> Result<(String, Vec<(String, String)>), String> {
    let mut read = Vec::new();
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(r) = rest.strip_prefix("$${") {
            out.push_str("${");
            rest = r;
        } else if let Some(r) = rest.strip_prefix("${") {
            // Not {s:?}: the string may hold a secret next to the reference.
            let end = r
                .find('}')
                .ok_or_else(|| "unterminated `${` (write `$${` for a literal one)".to_string())?;
            let value = resolve(&r[..end], base_dir, policy)?;
            out.push_str(&value);
            read.push((value, format!("${{{}}}", &r[..end])));
            rest = &r[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    Ok((out, read))
}

/// Said when a reference is refused: where the operator allows more.
const NOT_ALLOWED: &str = "this worker does not let jobs submitted through its API read it (the operator allows references with `sluice worker --allow-interpolation`)";

fn resolve(reference: &str, base_dir: &Path, policy: &Interpolation) -> Result<String, String> {
    if let Some(var) = reference.strip_prefix("env:") {
        let (name, default) = match var.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (var, None),
        };
        if !policy.allows_env(name) {
            return Err(format!("${{env:{name}}}: {NOT_ALLOWED}"));
        }
        match (std::env::var(name), default) {
            (Ok(v), _) => Ok(v),
            (Err(_), Some(d)) => Ok(d.to_string()),
            (Err(_), None) => Err(format!(
                "environment variable {name} is not set (referenced as ${{env:{name}}}; use ${{env:{name}:-default}} for a default)"
            )),
        }
    } else if let Some(file) = reference.strip_prefix("file:") {
        let p = base_dir.join(file);
        if !policy.allows_file(&p) {
            return Err(format!("${{file:{file}}}: {NOT_ALLOWED}"));
        }
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
        let (got, read) = expand(
            "a=${env:SLUICE_NO_SUCH_VAR:-dflt} b=${file:secret} c=$${x}",
            dir.path(),
            &Interpolation::All,
        )
        .unwrap();
        assert_eq!(got, "a=dflt b=hunter2 c=${x}");
        let expanded = Expanded(read);
        assert_eq!(
            expanded.redact("cannot connect as hunter2@db"),
            "cannot connect as ${file:secret}@db"
        );
    }

    #[test]
    fn missing_env_is_an_error() {
        let err = expand(
            "${env:SLUICE_DEFINITELY_UNSET}",
            Path::new("."),
            &Interpolation::All,
        )
        .unwrap_err();
        assert!(err.contains("SLUICE_DEFINITELY_UNSET is not set"), "{err}");
    }

    #[test]
    fn a_policy_allows_only_what_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let allowed = dir.path().join("secrets");
        std::fs::create_dir(&allowed).unwrap();
        std::fs::write(allowed.join("db"), "pw").unwrap();
        std::fs::write(dir.path().join("other"), "no").unwrap();
        let policy = Interpolation::parse(&format!(
            "env:PATH,env:SLUICE_OK_*,file:{}",
            allowed.display()
        ))
        .unwrap();
        let base = dir.path();
        assert!(expand("${env:PATH}", base, &policy).is_ok());
        assert!(expand("${env:SLUICE_OK_X:-d}", base, &policy).is_ok());
        let err = expand("${env:HOME}", base, &policy).unwrap_err();
        assert!(
            err.starts_with("${env:HOME}: this worker does not let"),
            "{err}"
        );
        assert!(
            !err.contains(&std::env::var("HOME").unwrap_or_default())
                || std::env::var("HOME").unwrap_or_default().len() < 2
        );
        assert_eq!(expand("${file:secrets/db}", base, &policy).unwrap().0, "pw");
        // Not outside the directory, not by `..`.
        assert!(expand("${file:other}", base, &policy).is_err());
        assert!(expand("${file:secrets/../other}", base, &policy).is_err());
        // Nothing at all by default.
        assert!(expand("${env:PATH}", base, &Interpolation::none()).is_err());
        assert!(Interpolation::parse("env:*").is_err());
    }
}
