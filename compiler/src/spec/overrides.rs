//! A connector's `with:` in one environment: the pipeline's, with the environment file's
//! `connectors.<name>.with` merged over it, key by key.

use crate::diag::Span;
use crate::spec::environments::EnvView;
use crate::spec::load::{Loaded, Repo};
use crate::spec::model::{EnvironmentOverride, Pipeline, Scalar, Setting, Settings};
use crate::spec::templates;

/// The `with:` of the source or sink `connector` of `pipeline` in `environment`: `with` with the
/// environment file's override merged over it.
pub fn connector_with(
    repo: &Repo,
    environment: &str,
    pipeline: &str,
    connector: &str,
    with: &Settings,
) -> Settings {
    let mut merged = with.clone();
    for (_, o) in overrides(repo, environment, pipeline, connector) {
        merged.extend(o.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    merged
}

/// One setting of a connector in one environment, and where it is written.
#[derive(Debug, Clone, Copy)]
pub struct Written<'a> {
    /// The value.
    pub setting: &'a Setting,
    /// The file it is written in: the pipeline's, or the environment file's.
    pub file: &'a str,
    /// Where in that file.
    pub span: Span,
}

/// The setting `key` of the source or sink `connector` of `pipeline` in `environment`, whose
/// `with:` is `with` at the JSON pointer `with_pointer`: the environment file's when it sets the
/// key.
pub fn connector_setting<'a>(
    repo: &'a Repo,
    environment: &str,
    pipeline: &'a Loaded<Pipeline>,
    connector: &str,
    (with, with_pointer): (&'a Settings, &str),
    key: &str,
) -> Option<Written<'a>> {
    let name = pipeline.spec.metadata.name.as_str();
    let overridden = overrides(repo, environment, name, connector)
        .into_iter()
        .filter_map(|(file, with)| Some((file, with.get_key_value(key)?)))
        .next_back();
    let (file, pointer, setting) = match overridden {
        Some((file, (k, setting))) => (
            file.file.as_str(),
            file.tree.nearest_span(&format!(
                "/spec/pipelines/{name}/connectors/{connector}/with/{}",
                escape(k)
            )),
            setting,
        ),
        None => {
            let (k, setting) = with.get_key_value(key)?;
            (
                pipeline.file.as_str(),
                pipeline.span(&format!("{with_pointer}/{}", escape(k))),
                setting,
            )
        }
    };
    Some(Written {
        setting,
        file,
        span: pointer,
    })
}

/// [`connector_setting`] in `env`, as its text renders there (`engine`: [`templates::engine`]):
/// where it is written, and the text. `None` when it is unset, not a string, or a template that
/// does not render (which the template rules report).
pub fn rendered_connector_setting<'a>(
    repo: &'a Repo,
    env: &EnvView,
    engine: &minijinja::Environment<'_>,
    pipeline: &'a Loaded<Pipeline>,
    connector: &str,
    with: (&'a Settings, &str),
    key: &str,
) -> Option<(Written<'a>, String)> {
    let written = connector_setting(repo, &env.name, pipeline, connector, with, key)?;
    let Setting::Value(Scalar::String(text)) = written.setting else {
        return None;
    };
    let text = if templates::is_template(text) {
        let context = templates::context(env, &pipeline.spec.metadata.name);
        templates::render(engine, text.clone(), &context).ok()?
    } else {
        text.clone()
    };
    Some((written, text))
}

/// The environment files' `with:` overrides of one connector, in file order.
fn overrides<'a>(
    repo: &'a Repo,
    environment: &str,
    pipeline: &str,
    connector: &str,
) -> Vec<(&'a Loaded<EnvironmentOverride>, &'a Settings)> {
    repo.environments
        .iter()
        .filter(|f| *f.spec.metadata.name == *environment)
        .filter_map(|f| {
            let (_, o) = f
                .spec
                .spec
                .pipelines
                .iter()
                .find(|(p, _)| ***p == *pipeline)?;
            let (_, c) = o.connectors.iter().find(|(c, _)| ***c == *connector)?;
            Some((f, &c.with))
        })
        .collect()
}

/// A key as a JSON pointer segment.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}
