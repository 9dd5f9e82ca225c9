//! `etl status`: what an environment's controller applied and how it runs
//! ([`etl::ops::status`]), as a table or the controller's JSON as served; `--wait` for CI.

use std::path::PathBuf;
use std::time::Duration;

use etl::ops::status::{self, Endpoint, Fetched, Outcome, Token, WaitOptions};

use crate::args::{CredentialsError, RegistryArgs};
use crate::exit::{Error, Verdict};
use crate::render;

/// How to print the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Header lines and one line per application, for people.
    Table,
    /// The controller's document, exactly as it served it.
    Json,
}

/// The arguments of `etl status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The environment: its controller's URL is then read from $ETL_CONTROLLER_URL_<ENV> (ENV
    /// in upper case, `-` as `_`) when set, and the controller must be applying it.
    #[arg(long = "env", value_name = "ENV")]
    environment: Option<String>,
    /// The controller's URL (http://HOST:PORT or https://…) [default: $ETL_CONTROLLER_URL_<ENV>
    /// with --env, else $ETL_CONTROLLER_URL].
    #[arg(long, value_name = "URL")]
    controller: Option<String>,
    /// A file holding the controller's bearer token [default: $ETL_CONTROLLER_TOKEN].
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// A CA certificate (PEM) to trust for an https controller, besides the system's.
    #[arg(long, value_name = "FILE")]
    ca_cert: Option<PathBuf>,
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

/// The environment variable of the controller URL of `environment`.
fn url_variable(environment: &str) -> String {
    etl::util::env_var_name("ETL_CONTROLLER_URL_", environment)
}

/// Prints the status; with `--wait`, once the environment is ready or the time is up.
pub fn run(args: Args) -> Result<Verdict, Error> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let url = args
        .controller
        .clone()
        .or_else(|| {
            args.environment
                .as_deref()
                .and_then(|e| var(&url_variable(e)))
        })
        .or_else(|| var("ETL_CONTROLLER_URL"))
        .ok_or_else(|| Error::NoController(args.environment.as_deref().map(url_variable)))?;
    let token = match &args.token_file {
        Some(path) => Some(Token::from_file(path)?),
        None => var("ETL_CONTROLLER_TOKEN")
            .map(|t| Token::new(&t, "ETL_CONTROLLER_TOKEN"))
            .transpose()?,
    };
    let ca_cert = args
        .ca_cert
        .as_deref()
        .map(|path| std::fs::read(path).map_err(etl::util::io::IoError::at(path)))
        .transpose()?;
    let endpoint = Endpoint {
        url,
        token,
        ca_cert,
    };
    let environment = args.environment.as_deref();
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

#[cfg(test)]
mod tests {
    #[test]
    fn url_variables() {
        assert_eq!(super::url_variable("dev"), "ETL_CONTROLLER_URL_DEV");
        assert_eq!(
            super::url_variable("eu-west.1"),
            "ETL_CONTROLLER_URL_EU_WEST_1"
        );
    }
}
