//! Diagnostics found environment by environment, for the rules that read settings as each
//! environment renders them (the lattice's, the batching settings'): one found in several
//! environments is reported once.

use crate::diag::{self, Diagnostic};

/// Diagnostics found environment by environment: one found in several environments is reported
/// once, with a note naming them unless it is found in all.
pub(super) struct Findings {
    found: Vec<(Diagnostic, Vec<String>)>,
}

impl Findings {
    pub fn new() -> Self {
        Findings { found: Vec::new() }
    }

    /// `d`, found in environment `env`.
    pub fn add(&mut self, env: &str, d: Diagnostic) {
        match self.found.iter_mut().find(|(f, _)| *f == d) {
            Some((_, envs)) => envs.push(env.to_owned()),
            None => self.found.push((d, vec![env.to_owned()])),
        }
    }

    /// Every diagnostic once, noting its environments when it was not found in all `envs`.
    pub fn finish(self, envs: usize, out: &mut Vec<Diagnostic>) {
        for (d, found) in self.found {
            out.push(if found.len() < envs {
                let noun = if found.len() == 1 {
                    "environment"
                } else {
                    "environments"
                };
                d.note(format!("in {noun} {}", diag::quoted_list(&found)))
            } else {
                d
            });
        }
    }
}
