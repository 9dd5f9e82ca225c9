//! `etl compile`: a repo into `--out`, its 1.x artifacts claimed with `--claims-key`, signed
//! with `--sign-key`, then pushed with `--push`.

use std::path::PathBuf;

use etl::build::dist::Plan;
use etl::ops::compile::{Compilation, Keys, Options};

use crate::args::{self, Color, Format, RegistryArgs};
use crate::commands::push;
use crate::exit::{Error, Verdict};
use crate::render;

/// The arguments of `etl compile`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pipeline repo (the directory holding etl.yaml).
    #[arg(long, default_value = ".", value_name = "DIR")]
    repo: PathBuf,
    /// Where to write the output: a new or empty directory, or an earlier output.
    #[arg(long, default_value = "dist", value_name = "DIR")]
    out: PathBuf,
    /// Cache of pulled components, componentized modules and compositions (default:
    /// $ETL_CACHE_DIR, else $XDG_CACHE_HOME/etl, else ~/.cache/etl).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Build everything, ignoring and not filling the cache.
    #[arg(long)]
    no_cache: bool,
    /// Output format of diagnostics, as for `etl validate`.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// URL of the pipeline repo, recorded in plan.json's provenance (e.g.
    /// https://github.com/acme/pipelines).
    #[arg(long, env = "ETL_SOURCE_URL", value_name = "URL")]
    source: Option<String>,
    /// Sign every artifact and deployment bundle of oci/ with this private key (from `etl
    /// keygen`): a cosign signature tagged `sha256-<digest>.sig` beside each, checked by `etl
    /// verify` and `cosign verify --key`. An encrypted key's passphrase is read from
    /// $ETL_KEY_PASSPHRASE. Signatures are deterministic: the output still reproduces.
    #[arg(long, value_name = "KEY")]
    sign_key: Option<PathBuf>,
    /// Embed wascap claims, issued by this nkey account seed (`SA…`, from `etl keygen
    /// --claims`), in every wasmCloud 1.x artifact: 1.x hosts fetch a component's secrets only
    /// with them. Each unit's subject (`M…`, in plan.json) is derived from the seed and the
    /// unit's name, the same in every build. Deterministic: the output still reproduces.
    #[arg(long, env = "ETL_CLAIMS_KEY_FILE", value_name = "FILE")]
    claims_key: Option<PathBuf>,
    /// Then push the artifacts to the project's registry (`spec.registry`), as `etl push`
    /// does.
    #[arg(long)]
    push: bool,
    /// With --push: also tag the artifacts this environment deploys, and its deployment
    /// bundle, with its name, as `etl push --env`; repeatable.
    #[arg(long = "env", value_name = "ENV", requires = "push")]
    environments: Vec<String>,
    #[command(flatten)]
    access: RegistryArgs,
}

/// Compiles the repo, renders the diagnostics and what was built, then pushes when asked.
pub fn run(args: Args, color: Color) -> Result<Verdict, Error> {
    let key = match &args.sign_key {
        Some(path) => Some(etl::ops::keygen::read_signing_key(
            path,
            args::passphrase().as_deref(),
        )?),
        None => None,
    };
    let claims = match &args.claims_key {
        Some(path) => Some(etl::ops::keygen::read_claims_key(path)?),
        None => None,
    };
    let cache = (!args.no_cache).then(|| etl::store::Cache::new(args::cache_dir(args.cache_dir)));
    let epoch = args::source_date_epoch();
    let origin = etl::ops::compile::origin(
        &args.repo,
        &args.out,
        cache.as_ref(),
        epoch.as_deref(),
        args.source,
    )?;
    if origin.uncommitted {
        eprintln!(
            "note: `{}` has uncommitted changes: plan.json records no revision",
            args.repo.display()
        );
    }
    let options = Options {
        out: args.out,
        cache,
        provenance: origin.provenance,
    };
    let keys = Keys {
        sign: key.as_ref(),
        claims: claims.as_ref(),
    };
    let compilation = etl::ops::compile::compile_signed(&args.repo, &options, keys)?;
    render::cache_warning(options.cache.as_ref());
    let done = compilation
        .plan
        .as_ref()
        .map(|plan| compiled(plan, &compilation, &options));
    render::diagnostics(
        &compilation.validation,
        &args.repo,
        args.format,
        color,
        done.as_deref(),
    );
    match compilation.plan {
        Some(_) if args.push => push::push(&options.out, None, args.environments, &args.access),
        Some(_) => Ok(Verdict::Success),
        None => Ok(Verdict::Invalid),
    }
}

/// The line that says what was compiled into where, and how (built, from the cache, shared):
/// each step and sink is one component per wasmCloud generation.
fn compiled(plan: &Plan, compilation: &Compilation, options: &Options) -> String {
    let units: usize = plan.pipelines.iter().map(|p| p.units().count()).sum();
    let components: usize = plan
        .pipelines
        .iter()
        .flat_map(|p| p.units())
        .map(|u| u.artifacts().count())
        .sum();
    let (built, cached) = (compilation.built, compilation.from_cache);
    let shared = components.saturating_sub(built + cached);
    let mut how = vec![format!("{built} built")];
    if options.cache.is_some() {
        how.push(format!("{cached} from cache"));
    }
    if shared > 0 {
        how.push(format!("{shared} shared with an identical one"));
    }
    format!(
        "compiled {} pipeline{} ({units} {}, {components} components: {}) into `{}`",
        plan.pipelines.len(),
        if plan.pipelines.len() == 1 { "" } else { "s" },
        if units == 1 {
            "step or sink"
        } else {
            "steps and sinks"
        },
        how.join(", "),
        options.out.display()
    )
}
