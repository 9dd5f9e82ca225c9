//! `etl top`: the per-step counts of an environment's controller ([`etl::ops::top`]), read
//! every `--interval`: in place on a terminal, one frame after another (a blank line between)
//! elsewhere.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use etl::ops::top::{self, WatchOptions};

use crate::args::ControllerArgs;
use crate::exit::{Error, Verdict};

/// The arguments of `etl top`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    controller: ControllerArgs,
    /// How often to read the counts again (e.g. 2s, 500ms; at least 100ms).
    #[arg(long, default_value = "2s", value_name = "DURATION", value_parser = interval)]
    interval: Duration,
    /// Print one frame and exit.
    #[arg(long)]
    once: bool,
}

/// `--interval`: a duration of at least 100 ms.
fn interval(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if d < Duration::from_millis(100) {
        return Err("at least 100ms".to_owned());
    }
    Ok(d)
}

/// Clears a terminal and puts the cursor at its top left.
const CLEAR: &str = "\x1b[H\x1b[2J";

/// Shows frames until Ctrl-C, a closed stdout, or after one with `--once`.
pub fn run(args: Args) -> Result<Verdict, Error> {
    let endpoint = args.controller.endpoint()?;
    let terminal = std::io::stdout().is_terminal();
    let options = WatchOptions {
        interval: args.interval,
        once: args.once,
    };
    let mut first = true;
    top::watch(
        &endpoint,
        args.controller.environment(),
        &options,
        |frame, heading| {
            let mut text = top::render(frame, heading);
            if terminal && !args.once {
                text.insert_str(0, CLEAR);
            } else if !first {
                text.insert(0, '\n');
            }
            first = false;
            let mut stdout = std::io::stdout().lock();
            // A closed stdout (`etl top | head`) ends the watch.
            stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
                .is_ok()
        },
    )?;
    Ok(Verdict::Success)
}
