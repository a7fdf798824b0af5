//! User-facing strings in [Fluent](https://projectfluent.org) (`.ftl`), English and German.
//!
//! Every crate owns its strings: the host's are in `locales/` at the top of the project,
//! each plugin's in `plugins/<name>/locales/`. A crate declares them once with
//! [`strings!`](crate::strings) and looks texts up through the resulting [`Strings`]:
//!
//! ```ignore
//! static STRINGS: Strings = heimdall_host::strings!();
//! STRINGS.t_in(ctx.locale(), "about", &[("version", "1.0")]);
//! ```
//!
//! A locale is matched exactly (`de`), then by language (`de-AT` → `de`), and falls back to
//! [`DEFAULT_LOCALE`]; a key missing in the chosen locale falls back too, and a key missing
//! everywhere yields the key itself, so a gap shows rather than hides.

use std::collections::HashMap;
use std::sync::OnceLock;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource};

/// The locale used when a key or locale is missing.
pub const DEFAULT_LOCALE: &str = "en-US";

/// The locales every crate ships: the default first.
pub const LOCALES: &[&str] = &["en-US", "de"];

/// One crate's strings: its `.ftl` sources per locale, parsed on first use.
pub struct Strings {
    owner: &'static str,
    sources: &'static [(&'static str, &'static str)],
    bundles: OnceLock<HashMap<&'static str, FluentBundle<FluentResource>>>,
}

impl std::fmt::Debug for Strings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Strings")
            .field("owner", &self.owner)
            .field("locales", &self.locales())
            .finish()
    }
}

impl Strings {
    /// The strings of `owner` (a crate's name, for error messages) from `(locale, ftl)`
    /// sources; use [`strings!`](crate::strings) rather than calling this.
    pub const fn new(
        owner: &'static str,
        sources: &'static [(&'static str, &'static str)],
    ) -> Self {
        Self {
            owner,
            sources,
            bundles: OnceLock::new(),
        }
    }

    fn bundles(&self) -> &HashMap<&'static str, FluentBundle<FluentResource>> {
        self.bundles.get_or_init(|| {
            self.sources
                .iter()
                .map(|(locale, ftl)| {
                    let resource = FluentResource::try_new((*ftl).to_string()).unwrap_or_else(
                        |(_, errors)| {
                            panic!(
                                "{}: locales/{locale}.ftl does not parse: {errors:?}",
                                self.owner
                            )
                        },
                    );
                    let lang = locale.parse().unwrap_or_else(|e| {
                        panic!("{}: {locale} is not a language tag: {e:?}", self.owner)
                    });
                    let mut bundle = FluentBundle::new_concurrent(vec![lang]);
                    // Discord and terminals show the isolation marks Fluent puts around
                    // arguments as stray characters.
                    bundle.set_use_isolating(false);
                    bundle.add_resource(resource).unwrap_or_else(|errors| {
                        panic!(
                            "{}: locales/{locale}.ftl repeats keys: {errors:?}",
                            self.owner
                        )
                    });
                    (*locale, bundle)
                })
                .collect()
        })
    }

    /// The locales this crate has strings for.
    pub fn locales(&self) -> Vec<&'static str> {
        self.sources.iter().map(|(l, _)| *l).collect()
    }

    /// The keys of `locale`, sorted (empty for a locale it does not have).
    pub fn keys(&self, locale: &str) -> Vec<String> {
        let Some((_, ftl)) = self.sources.iter().find(|(l, _)| *l == locale) else {
            return Vec::new();
        };
        let Ok(resource) = FluentResource::try_new((*ftl).to_string()) else {
            return Vec::new();
        };
        let mut keys: Vec<String> = resource
            .entries()
            .filter_map(|e| match e {
                fluent_syntax::ast::Entry::Message(m) => Some(m.id.name.to_string()),
                _ => None,
            })
            .collect();
        keys.sort();
        keys
    }

    /// The text for `key` in `locale` (or the default locale) without arguments, if this
    /// owner has that string at all.
    pub fn lookup(&self, locale: &str, key: &str) -> Option<String> {
        let text = self.t_in(locale, key, &[]);
        (text != key).then_some(text)
    }

    /// The text for `key` in the default locale with `args` filled in.
    pub fn t(&self, key: &str, args: &[(&str, &str)]) -> String {
        self.t_in(DEFAULT_LOCALE, key, args)
    }

    /// The text for `key` in `locale` (a Discord or browser locale such as `de` or `en-GB`)
    /// with `args` filled in.
    pub fn t_in(&self, locale: &str, key: &str, args: &[(&str, &str)]) -> String {
        let bundles = self.bundles();
        let chosen = resolve(locale, bundles.keys().copied());
        let mut fluent_args = FluentArgs::new();
        for (name, value) in args {
            fluent_args.set(*name, *value);
        }
        for loc in [chosen, DEFAULT_LOCALE] {
            let Some(bundle) = bundles.get(loc) else {
                continue;
            };
            let Some(pattern) = bundle.get_message(key).and_then(|m| m.value()) else {
                continue;
            };
            let mut errors = Vec::new();
            let text = bundle.format_pattern(pattern, Some(&fluent_args), &mut errors);
            if !errors.is_empty() {
                tracing::warn!(
                    owner = self.owner,
                    key,
                    locale = loc,
                    ?errors,
                    "string has unfilled arguments"
                );
            }
            return text.into_owned();
        }
        key.to_string()
    }
}

/// The best of `available` for `wanted`: exact, then by language, then the default.
fn resolve<'a>(wanted: &str, available: impl Iterator<Item = &'a str> + Clone) -> &'a str {
    let lang = wanted.split(['-', '_']).next().unwrap_or(wanted);
    available
        .clone()
        .find(|l| l.eq_ignore_ascii_case(wanted))
        .or_else(|| {
            available.clone().find(|l| {
                l.split('-')
                    .next()
                    .is_some_and(|x| x.eq_ignore_ascii_case(lang))
            })
        })
        .unwrap_or(DEFAULT_LOCALE)
}

/// The [`Strings`] of the calling crate: its `locales/en-US.ftl` and `locales/de.ftl`,
/// compiled into the binary.
#[macro_export]
macro_rules! strings {
    () => {
        $crate::locales::Strings::new(
            env!("CARGO_PKG_NAME"),
            &[
                (
                    "en-US",
                    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/locales/en-US.ftl")),
                ),
                (
                    "de",
                    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/locales/de.ftl")),
                ),
            ],
        )
    };
}

/// The host's own strings (`locales/` at the top of the project).
pub static HOST: Strings = Strings::new(
    "heimdall-host",
    &[
        ("en-US", include_str!("../../locales/en-US.ftl")),
        ("de", include_str!("../../locales/de.ftl")),
    ],
);

/// A host text in the default locale.
pub fn t(key: &str, args: &[(&str, &str)]) -> String {
    HOST.t(key, args)
}

/// A host text in `locale`.
pub fn t_in(locale: &str, key: &str, args: &[(&str, &str)]) -> String {
    HOST.t_in(locale, key, args)
}

#[cfg(test)]
mod tests {
    use super::*;

    static S: Strings = Strings::new(
        "test",
        &[
            (
                "en-US",
                "hello = Hello, { $name }!\nonly-en = English only\n",
            ),
            ("de", "hello = Hallo, { $name }!\n"),
        ],
    );

    #[test]
    fn picks_the_locale_then_the_language_then_the_default() {
        assert_eq!(S.t_in("de", "hello", &[("name", "Ana")]), "Hallo, Ana!");
        assert_eq!(S.t_in("de-AT", "hello", &[("name", "Ana")]), "Hallo, Ana!");
        assert_eq!(S.t_in("fr", "hello", &[("name", "Ana")]), "Hello, Ana!");
        assert_eq!(S.t_in("en-GB", "hello", &[("name", "Ana")]), "Hello, Ana!");
    }

    #[test]
    fn a_missing_key_falls_back_then_shows_itself() {
        assert_eq!(S.t_in("de", "only-en", &[]), "English only");
        assert_eq!(S.t_in("de", "nowhere", &[]), "nowhere");
        assert_eq!(S.keys("en-US"), vec!["hello", "only-en"]);
    }

    #[test]
    fn the_hosts_locales_have_the_same_keys() {
        assert!(!HOST.keys("en-US").is_empty());
        assert_eq!(HOST.keys("en-US"), HOST.keys("de"));
    }
}
