//! One module per subcommand, each its arguments (`Args`) and `run`: the call into the library,
//! and the rendering of what it returns.

pub mod compile;
pub mod diff;
pub mod dlq;
pub mod graph;
pub mod init;
pub mod inspect;
pub mod keygen;
pub mod promote;
pub mod push;
pub mod run;
pub mod status;
pub mod test;
pub mod top;
pub mod validate;
pub mod verify;
