//! How a command ends, and the one place that decides the exit status of each way: 0 success;
//! 1 the input is invalid, a check failed, or (`etl diff`) there are changes; 2 a usage error, a
//! file or registry that cannot be read, or an internal error. An error is printed here, once.

use std::process::ExitCode;

use etl::ops::inspect::InspectError;
use etl::ops::promote::PromoteError;
use etl::ops::push::PushError;

use crate::args::CredentialsError;

/// How a command that ran to the end came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Everything as asked.
    Success,
    /// The repo has errors (its diagnostics were rendered).
    Invalid,
    /// A check failed: a record, a fixture, a signature, the contract (each was reported).
    Failed,
    /// `etl diff` found changes.
    Changed,
}

/// Why a command stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The repo cannot be read.
    #[error(transparent)]
    Spec(#[from] etl::spec::Error),
    /// A compile cannot read the repo or write its output.
    #[error(transparent)]
    Compile(#[from] etl::ops::compile::CompileError),
    /// Files cannot be written without losing the user's.
    #[error(transparent)]
    Output(#[from] etl::util::out_dir::OutputError),
    /// `SOURCE_DATE_EPOCH` is unusable.
    #[error(transparent)]
    Provenance(#[from] etl::build::provenance::ProvenanceError),
    /// A key file cannot be read.
    #[error(transparent)]
    KeyFile(#[from] etl::ops::keygen::KeyFileError),
    /// A key pair cannot be written.
    #[error(transparent)]
    Keygen(#[from] etl::ops::keygen::KeygenError),
    /// Registry credentials cannot be had.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// No registry can be chosen.
    #[error(transparent)]
    Registry(#[from] etl::ops::registry::RegistryError),
    /// A push failed.
    #[error(transparent)]
    Push(#[from] PushError),
    /// A promotion failed or was refused.
    #[error(transparent)]
    Promote(#[from] PromoteError),
    /// Signatures could not be judged.
    #[error(transparent)]
    Verify(#[from] etl::ops::verify::VerifyError<CredentialsError>),
    /// An `--allow` is not an interface.
    #[error("{0}: expected `namespace:package/interface[@version]` or `namespace:package/*`")]
    Grant(String),
    /// A file cannot be inspected.
    #[error(transparent)]
    Inspect(#[from] etl::ops::inspect::InspectError),
    /// A pipeline or environment is unknown.
    #[error(transparent)]
    Plan(#[from] etl::build::deployment::DeploymentError),
    /// The artifacts to run cannot be had.
    #[error(transparent)]
    Prepare(#[from] etl_run::artifacts::PrepareError),
    /// The runtime cannot be set up.
    #[error(transparent)]
    Run(#[from] etl_run::RunError),
    /// Records cannot be streamed through the pipeline.
    #[error(transparent)]
    Stream(#[from] etl_run::stream::StreamError),
    /// Stdout cannot be written.
    #[error("stdout: {0}")]
    Stdout(std::io::Error),
    /// Fixtures cannot be run.
    #[error(transparent)]
    Test(#[from] etl_run::test::TestError),
    /// A `--secrets` file cannot be used.
    #[error(transparent)]
    Secrets(#[from] etl_run::secrets::SecretsFileError),
    /// A side of a diff cannot be had.
    #[error(transparent)]
    Diff(#[from] etl::ops::diff::DiffError),
    /// No controller URL was given.
    #[error(
        "which controller? give --controller URL, or set {}ETL_CONTROLLER_URL",
        .0.as_ref().map(|v| format!("{v} or ")).unwrap_or_default()
    )]
    NoController(Option<String>),
    /// The controller's token cannot be had.
    #[error(transparent)]
    Token(#[from] etl::ops::status::TokenError),
    /// A file cannot be read.
    #[error(transparent)]
    Io(#[from] etl::util::io::IoError),
    /// A controller's status cannot be had.
    #[error(transparent)]
    Status(#[from] etl::ops::status::StatusError),
    /// Waiting for a controller stopped early.
    #[error(transparent)]
    Wait(#[from] etl::ops::status::WaitError<CredentialsError>),
    /// Dead letters cannot be listed, shown or replayed.
    #[error(transparent)]
    Dlq(#[from] etl::ops::dlq::DlqError),
}

/// Exit statuses.
const SUCCESS: u8 = 0;
const FAILURE: u8 = 1;
const USAGE: u8 = 2;

impl Verdict {
    fn code(self) -> u8 {
        match self {
            Verdict::Success => SUCCESS,
            Verdict::Invalid | Verdict::Failed | Verdict::Changed => FAILURE,
        }
    }
}

impl Error {
    fn code(&self) -> u8 {
        match self {
            Error::Push(e) => match e {
                PushError::Registry(_) | PushError::DigestMismatch { .. } => FAILURE,
                PushError::Io(_)
                | PushError::Layout { .. }
                | PushError::UnknownEnvironment(_)
                | PushError::OtherRegistry(_) => USAGE,
            },
            Error::Promote(e) => match e {
                PromoteError::Registry(_)
                | PromoteError::NotTagged { .. }
                | PromoteError::Refused { .. }
                | PromoteError::Incompatible { .. }
                | PromoteError::NotInSource { .. }
                | PromoteError::Emit { .. }
                | PromoteError::Moved { .. }
                | PromoteError::BundleUnverified { .. } => FAILURE,
                PromoteError::Io(_)
                | PromoteError::Output(_)
                | PromoteError::Plan { .. }
                | PromoteError::UnknownEnvironment(_)
                | PromoteError::SameEnvironment(_)
                | PromoteError::OtherRegistry(_)
                | PromoteError::Time(_)
                | PromoteError::SignKeyMismatch { .. }
                | PromoteError::UnsignedBundle { .. }
                | PromoteError::Layout(_)
                | PromoteError::BundleLayout { .. } => USAGE,
            },
            Error::Dlq(e) if e.not_found() => FAILURE,
            Error::Inspect(e) => match e {
                InspectError::Component(_) => FAILURE,
                InspectError::Io(_) => USAGE,
            },
            Error::Spec(_)
            | Error::Compile(_)
            | Error::Output(_)
            | Error::Provenance(_)
            | Error::KeyFile(_)
            | Error::Keygen(_)
            | Error::Credentials(_)
            | Error::Registry(_)
            | Error::Verify(_)
            | Error::Grant(_)
            | Error::Plan(_)
            | Error::Prepare(_)
            | Error::Run(_)
            | Error::Stream(_)
            | Error::Stdout(_)
            | Error::Test(_)
            | Error::Secrets(_)
            | Error::Diff(_)
            | Error::NoController(_)
            | Error::Token(_)
            | Error::Io(_)
            | Error::Status(_)
            | Error::Wait(_)
            | Error::Dlq(_) => USAGE,
        }
    }
}

/// The exit status of a command's result; an error is printed first, on stderr.
pub fn status(result: Result<Verdict, Error>) -> ExitCode {
    ExitCode::from(match result {
        Ok(verdict) => verdict.code(),
        Err(e) => {
            eprintln!("error: {e}");
            e.code()
        }
    })
}

/// The exit status after a panic (reported by the panic hook): an internal error.
pub fn panicked() -> ExitCode {
    ExitCode::from(USAGE)
}
