//! The project's environments as templates and plans see them: each one's definition with its
//! override file applied.

use indexmap::IndexMap;

use crate::spec::delivery::DeliverySettings;
use crate::spec::load::Repo;
use crate::spec::model::HttpListener;

/// An environment as templates see it: the project's definition with its override file applied.
#[derive(Debug, Clone)]
pub struct EnvView {
    /// Environment name.
    pub name: String,
    /// wasmCloud lattice.
    pub lattice: String,
    /// Variables: the project's, with the override file's merged over them.
    pub vars: IndexMap<String, String>,
    /// Whether `secret:` references can be resolved here.
    pub has_secret_backend: bool,
    /// What the environment's shared HTTP listener binds (`http.address`, else
    /// [`HttpListener::DEFAULT_ADDRESS`]).
    pub http_address: String,
    /// `vars` as templates see them, built once.
    pub vars_value: minijinja::Value,
    /// Whether its units report each batch (`reports`, else `true`).
    pub reports: bool,
    /// Its delivery settings: its `delivery` over the project's.
    pub delivery: DeliverySettings,
}

/// Every environment of the project, in declaration order.
pub struct Environments(Vec<EnvView>);

impl Environments {
    /// The environments of the repo's project; `None` without a loaded project.
    pub(crate) fn of(repo: &Repo) -> Option<Self> {
        let project = &repo.project.as_ref()?.spec;
        let views = project
            .spec
            .environments
            .iter()
            .map(|(name, env)| {
                let text =
                    |(k, v): (&String, &crate::spec::model::Scalar)| (k.clone(), v.as_text());
                let mut vars: IndexMap<String, String> = env.vars.iter().map(text).collect();
                for file in repo
                    .environments
                    .iter()
                    .filter(|f| f.spec.metadata.name == *name)
                {
                    vars.extend(file.spec.spec.vars.iter().map(text));
                }
                let vars_value =
                    minijinja::Value::from_pairs(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
                EnvView {
                    vars_value,
                    name: name.to_string(),
                    lattice: env.lattice.clone(),
                    vars,
                    has_secret_backend: env.secrets.is_some() || project.spec.secrets.is_some(),
                    reports: env.reports.unwrap_or(true),
                    delivery: DeliverySettings::of(
                        project.spec.delivery.as_ref(),
                        env.delivery.as_ref(),
                    ),
                    http_address: env.http.as_ref().map_or_else(
                        || HttpListener::DEFAULT_ADDRESS.to_owned(),
                        |h| h.address.clone(),
                    ),
                }
            })
            .collect();
        Some(Environments(views))
    }

    /// The environment named `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&EnvView> {
        self.0.iter().find(|e| e.name == name)
    }

    /// Every environment name, in declaration order.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|e| e.name.as_str())
    }

    /// The environments a setting is rendered for: all, or only the one an override file names.
    pub(crate) fn for_setting<'a>(
        &'a self,
        only: Option<&'a str>,
    ) -> impl Iterator<Item = &'a EnvView> + 'a {
        self.0
            .iter()
            .filter(move |e| only.is_none_or(|o| o == e.name))
    }
}
