//! The one syntax for naming a field inside a JSON record value: the `sluice-value-path` crate,
//! shared with the plugin SDK so a plugin option reads like every connector option and route
//! that names a field.

pub use sluice_value_path::ValuePath;
