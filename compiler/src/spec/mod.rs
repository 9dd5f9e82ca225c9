//! The spec: pipeline repo files → typed, positioned specs, and every rule they must keep.
//!
//! [`yaml`] parses with positions, [`schema`] checks each file against its JSON Schema, [`load`]
//! turns files into the [`model`]; [`environments`] and [`templates`] say what a setting renders
//! to in each environment; [`check`] (stage `validate`) applies the rules a schema cannot express.
//! [`validate`] runs them all and reports every problem in one run.

pub mod check;
pub mod environments;
pub mod error;
pub mod load;
pub mod model;
pub mod schema;
pub mod templates;
pub mod validate;
pub mod yaml;

pub use error::Error;
pub use validate::{Validation, validate, validate_with};
