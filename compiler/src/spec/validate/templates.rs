//! Templates in `with:` and `config:` values: they must parse, use only variables every
//! environment defines (strict undefined) unless they guard them (`default`, `is defined`), and
//! render for every environment.

use std::collections::BTreeSet;

use minijinja::ErrorKind;

use super::settings::SettingsAt;
use crate::diag::{self, Code, Diagnostic, Span};
use crate::spec::environments::{EnvView, Environments};
use crate::spec::model::{Scalar, Setting};
use crate::spec::templates::{FILTERS, TESTS, context, engine, is_template};

pub(super) fn check_templates(
    at: &SettingsAt<'_>,
    environments: Option<&Environments>,
    out: &mut Vec<Diagnostic>,
) {
    let engine = engine();
    for (key, setting) in at.settings {
        let Setting::Value(Scalar::String(text)) = setting else {
            continue;
        };
        if !is_template(text) {
            continue;
        }
        let pointer = format!(
            "{}/{}",
            at.pointer,
            key.replace('~', "~0").replace('/', "~1")
        );
        let span = at.tree.nearest_span(&pointer);
        let template = match engine.template_from_str(text) {
            Ok(t) => t,
            Err(e) => {
                out.push(
                    Diagnostic::new(
                        Code::TemplateSyntax,
                        format!(
                            "template of `{key}` does not parse: {}",
                            e.detail().unwrap_or("syntax error")
                        ),
                    )
                    .at(at.file, span)
                    .label(e.kind().to_string())
                    .expected("a minijinja template such as `{{ vars.threshold }}`"),
                );
                continue;
            }
        };
        let Some(environments) = environments else {
            continue;
        };
        let used: BTreeSet<String> = template.undeclared_variables(true).into_iter().collect();
        let mut undefined = false;
        for var in &used {
            let (root, field) = var.split_once('.').unwrap_or((var.as_str(), ""));
            let var_span = locate(at, span, if field.is_empty() { root } else { field });
            match root {
                "vars" if !field.is_empty() => {
                    // Where it is not defined and the template needs it: rendering fails
                    // without it (and with every other missing var stubbed), so a use
                    // guarded by `default` or `is defined` is fine.
                    let lacking: Vec<&EnvView> = environments
                        .for_setting(at.only_env)
                        .filter(|e| !e.vars.contains_key(field))
                        .filter(|e| needs(&template, e, at.pipeline, field, &used))
                        .collect();
                    if lacking.is_empty() {
                        continue;
                    }
                    undefined = true;
                    let names: Vec<&str> = lacking.iter().map(|e| e.name.as_str()).collect();
                    let relevant: Vec<&EnvView> = environments.for_setting(at.only_env).collect();
                    let everywhere: Vec<&str> = relevant
                        .first()
                        .map(|first| {
                            first
                                .vars
                                .keys()
                                .map(String::as_str)
                                .filter(|k| relevant.iter().all(|e| e.vars.contains_key(*k)))
                                .collect()
                        })
                        .unwrap_or_default();
                    let having: Vec<&str> = relevant
                        .iter()
                        .filter(|e| e.vars.contains_key(field))
                        .map(|e| e.name.as_str())
                        .collect();
                    // A near miss that some environment defines, or else where to add it.
                    let help = diag::closest(
                        field,
                        relevant
                            .iter()
                            .flat_map(|e| e.vars.keys().map(String::as_str)),
                    )
                    .filter(|_| having.is_empty())
                    .map(|c| format!("did you mean `vars.{c}`?"))
                    .unwrap_or_else(|| {
                        format!(
                            "define `{field}` under `vars:` of {} in `etl.yaml`",
                            diag::quoted_list(&names)
                        )
                    });
                    let mut d = Diagnostic::new(
                        Code::UndefinedVariable,
                        format!(
                            "`{var}` is not defined in environment{} {}",
                            if names.len() == 1 { "" } else { "s" },
                            diag::quoted_list(&names)
                        ),
                    )
                    .at(at.file, var_span)
                    .label("undefined variable")
                    .expected(if everywhere.is_empty() {
                        "a variable that every environment defines (none does yet)".to_owned()
                    } else {
                        format!(
                            "a variable every environment defines: {}",
                            diag::quoted_list(&everywhere)
                        )
                    })
                    .help(help);
                    if !having.is_empty() {
                        d = d.note(format!(
                            "`{var}` is defined only in {}",
                            diag::quoted_list(&having)
                        ));
                    }
                    out.push(d);
                }
                "vars" | "env" | "pipeline" => {}
                other => {
                    undefined = true;
                    out.push(
                        Diagnostic::new(
                            Code::UndefinedVariable,
                            format!("template of `{key}` uses unknown variable `{other}`"),
                        )
                        .at(at.file, var_span)
                        .label("unknown variable")
                        .expected("`vars.NAME`, `env.name`, `env.lattice` or `pipeline.name`")
                        .maybe_help(
                            diag::closest(other, ["vars", "env", "pipeline"])
                                .map(|c| format!("did you mean `{c}`?"))
                                .or_else(|| {
                                    Some(format!(
                                        "environment variables are read as `vars.{other}`"
                                    ))
                                }),
                        ),
                    );
                }
            }
        }
        if undefined {
            continue;
        }
        for env in environments.for_setting(at.only_env) {
            if let Err(e) = template.render(context(env, at.pipeline)) {
                if let Some(d) = unknown_filter_or_test(at, key, span, &e) {
                    out.push(d);
                    break;
                }
                out.push(
                    Diagnostic::new(
                        Code::TemplateRender,
                        format!(
                            "template of `{key}` fails to render in environment `{}`: {}",
                            env.name,
                            e.detail().unwrap_or(&e.kind().to_string())
                        ),
                    )
                    .at(at.file, span)
                    .label("fails to render"),
                );
                break;
            }
        }
    }
}

/// Whether rendering in `env` fails for want of `vars.<field>`: with every other var the
/// template uses and `env` lacks stubbed as an empty string, so the failure is this var's.
fn needs(
    template: &minijinja::Template<'_, '_>,
    env: &EnvView,
    pipeline: &str,
    field: &str,
    used: &BTreeSet<String>,
) -> bool {
    let mut vars = env.vars.clone();
    for other in used.iter().filter_map(|v| v.strip_prefix("vars.")) {
        let other = other.split('.').next().unwrap_or(other);
        if other != field && !vars.contains_key(other) {
            vars.insert(other.to_owned(), String::new());
        }
    }
    let stubbed = EnvView {
        vars_value: minijinja::Value::from_pairs(vars.iter().map(|(k, v)| (k.clone(), v.clone()))),
        vars,
        ..env.clone()
    };
    matches!(
        template.render(context(&stubbed, pipeline)),
        Err(e) if e.kind() == ErrorKind::UndefinedError
    )
}

/// The diagnostic of a template that uses a filter or test minijinja does not have.
fn unknown_filter_or_test(
    at: &SettingsAt<'_>,
    key: &str,
    span: Span,
    e: &minijinja::Error,
) -> Option<Diagnostic> {
    let (what, known) = match e.kind() {
        ErrorKind::UnknownFilter => ("filter", FILTERS),
        ErrorKind::UnknownTest => ("test", TESTS),
        _ => return None,
    };
    // minijinja says "filter NAME is unknown" / "test NAME is unknown".
    let name = e
        .detail()?
        .strip_prefix(what)?
        .trim_start()
        .strip_suffix("is unknown")?
        .trim_end();
    Some(
        Diagnostic::new(
            Code::TemplateRender,
            format!("template of `{key}` uses unknown {what} `{name}`"),
        )
        .at(at.file, locate(at, span, name))
        .label(format!("unknown {what}"))
        .expected(format!("one of the {what}s {}", diag::quoted_list(known)))
        .maybe_help(diag::did_you_mean(name, known.iter().copied())),
    )
}

/// The span of `needle` inside a single-line scalar, else the scalar's span.
fn locate(at: &SettingsAt<'_>, span: Span, needle: &str) -> Span {
    let Some(source) = at.source else { return span };
    let Some(slice) = source.get(span.start.offset..span.end.offset) else {
        return span;
    };
    if span.start.line != span.end.line {
        return span;
    }
    match slice.find(needle) {
        Some(i) => {
            let column = span.start.column + slice[..i].chars().count() as u32;
            let start = crate::diag::Pos {
                line: span.start.line,
                column,
                offset: span.start.offset + i,
            };
            let end = crate::diag::Pos {
                column: column + needle.chars().count() as u32,
                offset: start.offset + needle.len(),
                ..start
            };
            Span { start, end }
        }
        None => span,
    }
}
