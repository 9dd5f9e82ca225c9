//! The spec: pipeline repo files → typed, positioned specs, and every rule they must keep.
//!
//! [`yaml`] parses with positions, [`schema`] checks each file against its JSON Schema, [`load`]
//! turns files into the [`model`]; [`environments`] (with their [`delivery`] settings),
//! [`overrides`] and [`templates`] say what a setting renders to in each environment, [`subjects`] how the compiler names subjects, and
//! [`egress`] what the hosts of an outbound HTTP grant may be and which a step gets;
//! [`validate`](mod@validate) (the stage) applies the rules a schema cannot express, and
//! [`validate()`] loads and checks a repo, reporting every problem in one run.

pub mod delivery;
pub mod egress;
pub mod environments;
pub mod error;
pub mod load;
pub mod model;
pub mod overrides;
pub mod schema;
pub mod subjects;
pub mod templates;
pub mod validate;
pub mod yaml;

pub use error::Error;
pub use validate::{Validation, validate, validate_with};
