//! `etl dlq`: the dead letters an environment's controller keeps ([`etl::ops::dlq`]): `list`,
//! `show` one, `replay` some into their step again.

use std::io::IsTerminal;

use etl::ops::dlq::{self, ListQuery, Selection, Served};

use crate::args::ControllerArgs;
use crate::exit::{Error, Verdict};
use crate::render;

/// The arguments of `etl dlq`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// List the dead letters the controller keeps, newest first: id, pipeline, step, reason
    /// class, when, payload size, and the reason (cut to the terminal's width).
    ///
    /// Exit status: 0 listed (even none), 2 the controller cannot be asked.
    List(ListArgs),
    /// Show one dead letter: its reason, headers, key, the payload's digest and size, and a
    /// preview of the payload — as the controller keeps it: cut short past its preview length
    /// (noted), and the values of secret-looking JSON keys and headers replaced by
    /// `[redacted]`. Control characters are shown escaped.
    ///
    /// Exit status: 0 shown, 1 the controller keeps no dead letter by that id, 2 usage error or
    /// the controller cannot be asked.
    Show(ShowArgs),
    /// Replay dead letters: the controller publishes each again to its step's replay subject
    /// (`etl.<project>.<pipeline>.replay.<step>`), which only that step listens on, so it is
    /// transformed again — once the step is fixed, presumably — and goes on down the pipeline.
    ///
    /// Name the dead letters by id, or every one kept of one step with `--pipeline P --step S
    /// --all` (`--all` alone is refused). The controller records every replay: who asked (as
    /// `--actor` says), the credential used, from where, when, which ids. Prints what was
    /// replayed to which subject, and which ids it no longer keeps.
    ///
    /// Exit status: 0 every id asked for was replayed, 1 some id was not kept (the others were
    /// replayed), 2 usage error or the controller cannot be asked.
    Replay(ReplayArgs),
}

/// How to print a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ListFormat {
    /// One line per dead letter, for people.
    Table,
    /// The controller's document, exactly as it served it.
    Json,
}

/// How to print one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum TextFormat {
    /// For people.
    Text,
    /// The controller's document, exactly as it served it.
    Json,
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    #[command(flatten)]
    controller: ControllerArgs,
    /// Only this pipeline's dead letters.
    #[arg(long, value_name = "PIPELINE")]
    pipeline: Option<String>,
    /// Only this step's.
    #[arg(long, value_name = "STEP")]
    step: Option<String>,
    /// At most this many, the newest [default: the controller's].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    limit: Option<u32>,
    /// `table` or `json`.
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    format: ListFormat,
}

#[derive(Debug, clap::Args)]
struct ShowArgs {
    /// The dead letter's id (`<seq>-<index>`, as `etl dlq list` shows it).
    #[arg(value_name = "ID")]
    id: String,
    #[command(flatten)]
    controller: ControllerArgs,
    /// `text` or `json`.
    #[arg(long, value_enum, default_value_t = TextFormat::Text)]
    format: TextFormat,
}

#[derive(Debug, clap::Args)]
struct ReplayArgs {
    /// The dead letters to replay, by id (`<seq>-<index>`, as `etl dlq list` shows them).
    #[arg(
        value_name = "ID",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    ids: Vec<String>,
    /// With --all: the pipeline whose dead letters to replay.
    #[arg(long, value_name = "PIPELINE", requires = "all")]
    pipeline: Option<String>,
    /// With --all: its step whose dead letters to replay.
    #[arg(long, value_name = "STEP", requires = "all")]
    step: Option<String>,
    /// Replay every dead letter the controller keeps of --pipeline's --step (both required).
    #[arg(long, requires_all = ["pipeline", "step"])]
    all: bool,
    /// Who asks, as the controller records it [default: $USER@HOSTNAME].
    #[arg(long, value_name = "NAME")]
    actor: Option<String>,
    #[command(flatten)]
    controller: ControllerArgs,
    /// `text` or `json` (the controller's record of the replay, as served).
    #[arg(long, value_enum, default_value_t = TextFormat::Text)]
    format: TextFormat,
}

/// Runs the subcommand.
pub fn run(args: Args) -> Result<Verdict, Error> {
    match args.command {
        Command::List(args) => list(args),
        Command::Show(args) => show(args),
        Command::Replay(args) => replay(args),
    }
}

fn list(args: ListArgs) -> Result<Verdict, Error> {
    let endpoint = args.controller.endpoint()?;
    let query = ListQuery {
        pipeline: args.pipeline,
        step: args.step,
        limit: args.limit,
    };
    let listed = dlq::list(&endpoint, args.controller.environment(), &query)?;
    match args.format {
        ListFormat::Json => print_served(&listed),
        ListFormat::Table if listed.document.is_empty() => {
            render::print("no dead letters kept\n");
        }
        ListFormat::Table => render::print(&dlq::list_table(&listed.document, width())),
    }
    Ok(Verdict::Success)
}

fn show(args: ShowArgs) -> Result<Verdict, Error> {
    let endpoint = args.controller.endpoint()?;
    let shown = dlq::show(&endpoint, args.controller.environment(), &args.id)?;
    match args.format {
        TextFormat::Json => print_served(&shown),
        TextFormat::Text => render::print(&dlq::show_text(&shown.document)),
    }
    Ok(Verdict::Success)
}

fn replay(args: ReplayArgs) -> Result<Verdict, Error> {
    let endpoint = args.controller.endpoint()?;
    let selection = match (args.all, args.pipeline, args.step) {
        (true, Some(pipeline), Some(step)) => Selection::All { pipeline, step },
        _ => Selection::Ids(args.ids),
    };
    let actor = args.actor.unwrap_or_else(default_actor);
    let replayed = dlq::replay(&endpoint, args.controller.environment(), &selection, &actor)?;
    match args.format {
        TextFormat::Json => print_served(&replayed),
        TextFormat::Text => render::print(&dlq::replay_summary(&replayed.document)),
    }
    let missing = &replayed.document.missing;
    if missing.is_empty() {
        if let Selection::All { pipeline, step } = &selection
            && replayed.document.replayed.is_empty()
        {
            eprintln!("note: the controller keeps no dead letters of {pipeline}'s step {step}");
        }
        return Ok(Verdict::Success);
    }
    eprintln!(
        "not replayed: the controller keeps no dead letter {}",
        missing
            .iter()
            .map(|id| format!("`{id}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(Verdict::Failed)
}

/// A document as the controller served it, on a line of its own.
fn print_served<T>(served: &Served<T>) {
    let mut body = String::from_utf8_lossy(&served.body).into_owned();
    if !body.ends_with('\n') {
        body.push('\n');
    }
    render::print(&body);
}

/// The width a table may take: the terminal's, else $COLUMNS, else none (reasons are then cut
/// at a fixed length).
fn width() -> Option<usize> {
    let stdout = std::io::stdout();
    if stdout.is_terminal()
        && let Some((terminal_size::Width(w), _)) = terminal_size::terminal_size_of(&stdout)
    {
        return Some(usize::from(w));
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse().ok())
        .filter(|w| *w > 0)
}

/// `$USER@HOSTNAME`, as far as they can be found.
fn default_actor() -> String {
    let user = ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.trim().is_empty()))
        .unwrap_or_else(|| "unknown".to_owned());
    format!("{}@{}", user.trim(), hostname())
}

/// This machine's name: the kernel's, /etc/hostname's, $HOSTNAME, `hostname`'s, else `unknown`.
fn hostname() -> String {
    let nonempty = |s: String| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok().and_then(nonempty))
        .or_else(|| {
            ["HOSTNAME", "COMPUTERNAME"]
                .iter()
                .find_map(|v| std::env::var(v).ok().and_then(nonempty))
        })
        .or_else(|| {
            std::process::Command::new("hostname")
                .output()
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| nonempty(String::from_utf8_lossy(&o.stdout).into_owned()))
        })
        .unwrap_or_else(|| "unknown".to_owned())
}
