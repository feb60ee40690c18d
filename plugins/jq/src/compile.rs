//! Parse and compile a jq filter once, with jq's messages when it does not.

use jaq_core::load::{self, Arena, File, Loader};
use jaq_core::{Compiler, Native, box_iter::box_once, compile, data::JustLut};
use jaq_json::Val;

/// The data a filter runs on: JSON values and nothing else (no `input`/`inputs`).
pub type Data = JustLut<Val>;

/// A compiled filter.
pub type Filter = jaq_core::Filter<Data>;

/// The native filters: jaq's standard library, with `now` answering the batch's processing time
/// (the sandbox has no clock, so the library's own `now` would say 1970).
fn funs() -> impl Iterator<Item = jaq_core::native::Fun<Data>> {
    let now: jaq_core::native::Fun<Data> = (
        "now",
        Box::new([]),
        Native::new(|_| {
            let seconds = sluice_plugin_sdk::batch_time_ms() as f64 / 1000.0;
            box_once(Ok(Val::from(seconds)))
        }),
    );
    jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs())
        .filter(|(name, args, _)| !(*name == "now" && args.is_empty()))
        .chain([now])
}

/// Compile `code`, whose free variables are `vars` (each spelled with its `$`).
/// The error is jaq's message(s), with the position in `code` where there is one.
pub fn compile(code: &str, vars: &[String]) -> Result<Filter, String> {
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    let arena = Arena::default();
    let modules = Loader::new(defs)
        .load(&arena, File { code, path: () })
        .map_err(|errs| {
            let msgs = errs.into_iter().flat_map(|(_, e)| load_messages(code, e));
            msgs.collect::<Vec<_>>().join("; ")
        })?;
    Compiler::default()
        .with_funs(funs())
        .with_global_vars(vars.iter().map(String::as_str))
        .compile(modules)
        .map_err(|errs| {
            let msgs = errs
                .into_iter()
                .flat_map(|(_, e)| e)
                .map(|(name, undefined)| {
                    let what = match undefined {
                        compile::Undefined::Filter(arity) => format!("filter `{name}/{arity}`"),
                        other => format!("{} `{name}`", other.as_str()),
                    };
                    format!("undefined {what}{}", at(code, name))
                });
            msgs.collect::<Vec<_>>().join("; ")
        })
}

fn load_messages(code: &str, error: load::Error<&str>) -> Vec<String> {
    match error {
        load::Error::Io(errs) => errs
            .into_iter()
            .map(|(path, e)| format!("cannot load module {path:?}: {e}"))
            .collect(),
        load::Error::Lex(errs) => errs
            .into_iter()
            .map(|(expect, found)| format!("expected {}{}", expect.as_str(), at(code, found)))
            .collect(),
        load::Error::Parse(errs) => errs
            .into_iter()
            .map(|(expect, found)| {
                let what = match found {
                    "" => "the end of the filter".to_string(),
                    token => format!("`{token}`"),
                };
                format!(
                    "expected {}, found {what}{}",
                    expect.as_str(),
                    at(code, found)
                )
            })
            .collect(),
    }
}

/// " at character N" when `part` is a non-empty slice of `code` (jaq's errors point into the
/// filter text); empty otherwise.
fn at(code: &str, part: &str) -> String {
    // Distinct allocations do not overlap, so a non-empty `part` lying within `code`'s bytes is
    // a slice of it.
    let start = (part.as_ptr() as usize).wrapping_sub(code.as_ptr() as usize);
    let within = start < code.len() && part.len() <= code.len() - start;
    match code.get(..start) {
        Some(before) if within && !part.is_empty() => {
            format!(" at character {}", before.chars().count() + 1)
        }
        _ => String::new(),
    }
}
