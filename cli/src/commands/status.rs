//! `etl status`: what an environment's controller applied and how it runs
//! ([`etl::ops::status`]), as a table or the controller's JSON as served; `--wait` for CI.

use std::time::Duration;

use etl::ops::status::{self, Fetched, Outcome, WaitOptions};

use crate::args::{ControllerArgs, CredentialsError, RegistryArgs};
use crate::exit::{Error, Verdict};
use crate::render;

/// How to print the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Header lines and one line per application (with its steps' and sinks' counts under it),
    /// for people.
    Table,
    /// The controller's document, exactly as it served it.
    Json,
}

/// The arguments of `etl status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    controller: ControllerArgs,
    /// `table` or `json`.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    format: Output,
    /// Ask again until the environment runs the bundle its tag names now (the controller
    /// says `ready` and applied the digest the registry gives the tag at that moment).
    #[arg(long)]
    wait: bool,
    /// How long --wait waits (e.g. 90s, 5m).
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = humantime::parse_duration,
          requires = "wait")]
    timeout: Duration,
    /// The registry (`host[:port]`) --wait may send --username's password to: the
    /// controller's document names the bundle's registry, and a password goes nowhere else.
    #[arg(long, value_name = "HOST[:PORT]")]
    registry: Option<String>,
    #[command(flatten)]
    access: RegistryArgs,
}

/// Prints the status; with `--wait`, once the environment is ready or the time is up.
pub fn run(args: Args) -> Result<Verdict, Error> {
    let endpoint = args.controller.endpoint()?;
    let environment = args.controller.environment();
    if !args.wait {
        let fetched = status::fetch(&endpoint, environment)?;
        print(&fetched, args.format);
        let tag = fetched.status.tag.digest.as_deref();
        return Ok(match status::not_ready(&fetched.status, tag) {
            None => Verdict::Success,
            Some(why) => {
                eprintln!("not ready: {why}");
                Verdict::Failed
            }
        });
    }
    let options = WaitOptions {
        timeout: args.timeout,
        interval: Duration::from_secs(1),
        insecure: args.access.insecure.clone(),
    };
    let outcome = status::wait(
        &endpoint,
        environment,
        &options,
        |host| {
            if args.access.gives_password() && args.registry.as_deref() != Some(host) {
                return Err(CredentialsError::UnnamedRegistry {
                    host: host.to_owned(),
                });
            }
            args.access.credentials(host)
        },
        |why| eprintln!("waiting: {why}"),
    )?;
    match outcome {
        Outcome::Ready(fetched) => {
            print(&fetched, args.format);
            Ok(Verdict::Success)
        }
        Outcome::TimedOut { last, why } => {
            if let Some(fetched) = &last {
                print(fetched, args.format);
            }
            eprintln!(
                "not ready after {}: {why}",
                humantime::format_duration(args.timeout)
            );
            Ok(Verdict::Failed)
        }
    }
}

fn print(fetched: &Fetched, format: Output) {
    match format {
        Output::Table => render::print(&status::table(&fetched.status)),
        Output::Json => {
            let mut body = String::from_utf8_lossy(&fetched.body).into_owned();
            if !body.ends_with('\n') {
                body.push('\n');
            }
            render::print(&body);
        }
    }
}
