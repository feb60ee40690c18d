#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
// The README example shows a plugin crate with its unit test, as `sluice plugin new` writes it.
#![allow(clippy::test_attr_in_doctest)]

mod record;
mod rt;

pub mod json;
pub mod log;

pub use bytes::Bytes;
pub use record::{Header, IntoOutcome, Outcome, Record};
pub use rt::{batch_time_ms, config_at};
pub use serde_json;
/// The dotted field path of job files (`"customer.email"`): the host's own syntax, from the
/// crate both share.
pub use sluice_value_path::ValuePath;
/// How route conditions compare a field with a wanted value (`equals`, `in`, and numbers for
/// `gt`/`lt`): the host's own rules, for plugins that test fields the way routes do.
pub use sluice_value_path::{as_number, loosely_equal};

/// Bindings generated from `transforms/wit` (the `sluice:transform` world).
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "transform",
        path: "../../transforms/wit",
        pub_export_macro: true,
        export_macro_name: "__export_transform_world",
        default_bindings_module: "sluice_plugin_sdk::bindings",
    });
}

/// A transform with state, or one that wants whole batches.
///
/// Export it with [`export_plugin!`]. For a plain per-record function use [`transform!`].
pub trait Plugin: Sized + 'static {
    /// The transform's `with` table, deserialized from JSON.
    type Config: serde::de::DeserializeOwned;

    /// Build the plugin from its config; an `Err` rejects the job with that message.
    fn new(config: Self::Config) -> Result<Self, String>;

    /// Transform one record.
    fn transform(&mut self, record: Record) -> Outcome;

    /// Transform a batch: exactly one outcome per record, in order. Defaults to calling
    /// [`Plugin::transform`] on each record.
    fn process_batch(&mut self, records: Vec<Record>) -> Vec<Outcome> {
        records.into_iter().map(|r| self.transform(r)).collect()
    }
}

/// A rejection of the `with` table that names the field at fault: the host reports it at that
/// field's line of the job file (`job.toml:12: transforms[0].with.rename.a: expected a string`).
/// `field` is a dotted path with indices inside `with`, e.g. `rename.a` or `rules[2].max`.
/// Use it for the `Err` of [`Plugin::new`]; configs that fail to deserialize are reported this
/// way already.
pub fn config_error(field: &str, message: impl std::fmt::Display) -> String {
    format!("`{field}`: {message}")
}

/// Config for a plugin that takes none: accepts only an empty `with` table.
#[derive(Clone, Copy, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoConfig {}

#[doc(hidden)]
pub mod __private {
    pub use crate::rt::{init_fn, init_plugin, process};
}

/// Export a function `fn(Record, &Config) -> impl IntoOutcome` as the plugin.
///
/// `Config` is any `serde::Deserialize` type (use [`NoConfig`] for none). Call once per crate.
#[macro_export]
macro_rules! transform {
    ($f:path) => {
        #[doc(hidden)]
        pub struct __SluiceTransform;

        impl $crate::bindings::Guest for __SluiceTransform {
            fn init(config: ::std::string::String) -> ::std::result::Result<(), ::std::string::String> {
                $crate::__private::init_fn(config, $f)
            }
            fn process(
                batch: ::std::vec::Vec<u8>,
            ) -> ::std::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
                $crate::__private::process(batch)
            }
        }

        $crate::bindings::__export_transform_world!(__SluiceTransform with_types_in $crate::bindings);
    };
}

/// Export a type implementing [`Plugin`] as the plugin. Call once per crate.
#[macro_export]
macro_rules! export_plugin {
    ($t:ty) => {
        #[doc(hidden)]
        pub struct __SluiceTransform;

        impl $crate::bindings::Guest for __SluiceTransform {
            fn init(config: ::std::string::String) -> ::std::result::Result<(), ::std::string::String> {
                $crate::__private::init_plugin::<$t>(config)
            }
            fn process(
                batch: ::std::vec::Vec<u8>,
            ) -> ::std::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
                $crate::__private::process(batch)
            }
        }

        $crate::bindings::__export_transform_world!(__SluiceTransform with_types_in $crate::bindings);
    };
}
