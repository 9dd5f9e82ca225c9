//! `etl run`: records through one pipeline (and the pipelines run with it on the same bus), each
//! outcome printed as it completes.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use clap::ValueEnum;
use etl_run::artifacts::Selection;
use etl_run::output;
use etl_run::stream::{self, Input, Stream};

use crate::args::{ArtifactArgs, Color, LimitArgs, SecretArgs};
use crate::exit::{Error, Verdict};

/// The arguments of `etl run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pipeline the records enter, then any pipelines to run with it on the same in-memory
    /// bus (each must read what another of them publishes: a sub-pipeline, `connector:
    /// pipeline`, or a `nats` source on a sink's subject). Units are then named
    /// `<pipeline>/<unit>` in the output.
    #[arg(value_name = "PIPELINE", required = true, num_args = 1..)]
    pipelines: Vec<String>,
    /// Also run every pipeline that reads one of these through `connector: pipeline`, and
    /// those that read them, and so on.
    #[arg(long)]
    downstream: bool,
    /// The environment whose configuration to use (default: the project's first).
    #[arg(long, value_name = "ENV")]
    env: Option<String>,
    /// JSON lines of input records; `-` for stdin.
    #[arg(long, default_value = "-", value_name = "FILE")]
    input: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = RunFormat::Text)]
    format: RunFormat,
    #[command(flatten)]
    artifacts: ArtifactArgs,
    #[command(flatten)]
    secrets: SecretArgs,
    #[command(flatten)]
    limits: LimitArgs,
}

/// How outcomes are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RunFormat {
    /// Lines for people.
    Text,
    /// One JSON object per line (docs/running.md).
    Jsonl,
}

/// Streams the input through the pipeline: each record's outcome on stdout as soon as it is
/// known, then the summary. Progress goes to stderr when it is a terminal and stdout is not.
pub fn run(args: Args, color: Color) -> Result<Verdict, Error> {
    let selection = Selection {
        named: args.pipelines,
        downstream: args.downstream,
    };
    let secrets = args.secrets.values()?;
    let Some(prepared) = args.artifacts.prepare(&selection, color)? else {
        return Ok(Verdict::Invalid);
    };
    let pipeline = stream::load(
        &prepared.validation.repo,
        &prepared.artifacts,
        &prepared.pipelines,
        args.env,
        &prepared.cache,
        &secrets,
    )?;
    let input = Input::new(&args.input);
    let mut limits = args.limits.limits();
    if input == Input::Stdin && std::io::stdin().is_terminal() {
        eprintln!("reading records from stdin, one JSON object a line; end with Ctrl-D");
        // Typed records run as each line is entered.
        limits.batch = 1;
    }
    let mut stream = Stream::open(&pipeline, &input, &limits)?;
    let total = stream.total();
    let show = std::io::stderr().is_terminal() && !std::io::stdout().is_terminal();
    let mut last = Instant::now();
    let mut out = std::io::stdout().lock();
    for outcome in stream.by_ref() {
        let outcome = outcome?;
        let text = match args.format {
            RunFormat::Text => output::text_outcome(&outcome),
            RunFormat::Jsonl => output::jsonl_outcome(&outcome),
        };
        match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            Ok(()) => {}
            // The reader is gone (`| head`): nothing more can be shown.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
            Err(e) => return Err(Error::Stdout(e)),
        }
        let done = outcome.input + 1;
        if show && (last.elapsed().as_millis() >= 100 || Some(done) == total) {
            last = Instant::now();
            match total {
                Some(total) => eprint!("\r{done}/{total} records"),
                None => eprint!("\r{done} records"),
            }
        }
    }
    let summary = stream.summary();
    if show && summary.inputs > 0 {
        eprintln!();
    }
    let _ = out.write_all(
        match args.format {
            RunFormat::Text => output::text_summary(&summary),
            RunFormat::Jsonl => output::jsonl_summary(&summary),
        }
        .as_bytes(),
    );
    let _ = out.flush();
    Ok(if summary.failed() == 0 {
        Verdict::Success
    } else {
        Verdict::Failed
    })
}
