//! User-facing strings, kept in `locales/<locale>.json` (one flat key → text map each).
//!
//! `{name}` in a text is replaced by the argument of that name.

use std::collections::HashMap;
use std::sync::OnceLock;

/// The locale used when a key is missing elsewhere.
pub const DEFAULT_LOCALE: &str = "en-US";

const BUNDLES: &[(&str, &str)] = &[("en-US", include_str!("../locales/en-US.json"))];

fn bundles() -> &'static HashMap<&'static str, HashMap<String, String>> {
    static B: OnceLock<HashMap<&'static str, HashMap<String, String>>> = OnceLock::new();
    B.get_or_init(|| {
        BUNDLES
            .iter()
            .map(|(loc, text)| {
                let map: HashMap<String, String> = serde_json::from_str(text)
                    .unwrap_or_else(|e| panic!("locales/{loc}.json is not a flat JSON map: {e}"));
                (*loc, map)
            })
            .collect()
    })
}

/// The locales that have a bundle.
pub fn available() -> Vec<&'static str> {
    BUNDLES.iter().map(|(l, _)| *l).collect()
}

/// Whether `key` exists in the default locale.
pub fn has(key: &str) -> bool {
    bundles()[DEFAULT_LOCALE].contains_key(key)
}

/// The text for `key` in the default locale with `args` filled in.
pub fn t(key: &str, args: &[(&str, &str)]) -> String {
    t_in(DEFAULT_LOCALE, key, args)
}

/// The text for `key` in `locale` (falling back to the default) with `args` filled in.
/// A missing key yields the key itself, so a gap shows rather than hides.
pub fn t_in(locale: &str, key: &str, args: &[(&str, &str)]) -> String {
    let b = bundles();
    let text = b
        .get(locale)
        .and_then(|m| m.get(key))
        .or_else(|| b[DEFAULT_LOCALE].get(key))
        .map(String::as_str)
        .unwrap_or(key);
    let mut out = text.to_string();
    for (name, value) in args {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}
