//! The commands, as library functions over a repo or a `dist/`: each takes typed options and
//! returns a typed report or error, which the CLI renders.

pub mod compile;
pub mod diff;
pub mod dlq;
pub mod graph;
pub mod init;
pub mod inspect;
pub mod keygen;
pub mod promote;
pub mod push;
pub mod registry;
pub mod status;
pub mod telemetry;
pub mod top;
pub mod verify;
