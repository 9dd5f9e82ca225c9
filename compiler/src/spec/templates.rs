//! The template language of `with:` and `config:` values (minijinja, strict about undefined
//! variables, with bounded fuel) and what a template sees in one environment.

use minijinja::{Environment, UndefinedBehavior, context};

use crate::spec::environments::EnvView;

/// Fuel for rendering one value: enough for any real setting, bounded for a runaway loop.
const FUEL: u64 = 50_000;

/// The minijinja environment every setting is rendered with.
pub fn engine() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env
}

/// The filters templates may use: minijinja's built-in ones (with this build's features).
#[rustfmt::skip]
pub const FILTERS: &[&str] = &[
    "abs", "attr", "batch", "bool", "capitalize", "chain", "count", "d", "default", "dictsort",
    "e", "escape", "first", "float", "format", "groupby", "indent", "int", "items", "join",
    "last", "length", "lines", "list", "lower", "map", "max", "min", "pprint", "reject",
    "rejectattr", "replace", "reverse", "round", "safe", "select", "selectattr", "slice", "sort",
    "split", "string", "sum", "title", "trim", "unique", "upper", "zip",
];

/// The tests templates may use (`is defined`): minijinja's built-in ones.
#[rustfmt::skip]
pub const TESTS: &[&str] = &[
    "boolean", "defined", "divisibleby", "endingwith", "eq", "equalto", "escaped", "even",
    "false", "filter", "float", "ge", "greaterthan", "gt", "in", "int", "integer", "iterable",
    "le", "lessthan", "lower", "lt", "mapping", "ne", "none", "number", "odd", "safe", "sameas",
    "sequence", "startingwith", "string", "test", "true", "undefined", "upper",
];

/// Whether a setting value is a template (rather than a literal).
pub fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

/// A setting's text as it reads in one environment: rendered when it is a template, else as
/// written.
pub fn render(
    engine: &Environment<'_>,
    text: String,
    context: &minijinja::Value,
) -> Result<String, minijinja::Error> {
    if is_template(&text) {
        engine.render_str(&text, context.clone())
    } else {
        Ok(text)
    }
}

/// What a template of `pipeline` sees in one environment.
pub fn context(env: &EnvView, pipeline: &str) -> minijinja::Value {
    context! {
        vars => env.vars_value.clone(),
        env => context! { name => &env.name, lattice => &env.lattice },
        pipeline => context! { name => pipeline },
    }
}

#[cfg(test)]
mod tests {
    use minijinja::{ErrorKind, context};

    use super::*;

    #[test]
    fn every_listed_filter_and_test_exists() {
        let env = engine();
        for name in FILTERS {
            let e = env.render_str(&format!("{{{{ 1 | {name} }}}}"), ());
            assert!(
                e.as_ref().err().map(minijinja::Error::kind) != Some(ErrorKind::UnknownFilter),
                "filter {name}: {e:?}"
            );
        }
        for name in TESTS {
            let e = env.render_str(&format!("{{{{ 1 is {name} }}}}"), ());
            assert!(
                e.as_ref().err().map(minijinja::Error::kind) != Some(ErrorKind::UnknownTest),
                "test {name}: {e:?}"
            );
        }
        let e = env.render_str("{{ 1 | nosuchfilter }}", ()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnknownFilter);
    }

    #[test]
    fn default_and_is_defined_render_under_strict_undefined() {
        let env = engine();
        let ctx = context! { vars => context! { y => "7" } };
        let render = |t: &str| env.render_str(t, ctx.clone()).unwrap();
        assert_eq!(render(r#"{{ vars.x | default("50") }}"#), "50");
        assert_eq!(render(r#"{{ vars.y | default("50") }}"#), "7");
        assert_eq!(
            render("{% if vars.x is defined %}{{ vars.x }}{% else %}none{% endif %}"),
            "none"
        );
        assert!(env.render_str("{{ vars.x }}", ctx).is_err());
    }
}
