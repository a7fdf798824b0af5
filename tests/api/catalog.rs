//! The plugin catalog: the real one is consistent and complete, broken ones stop start-up,
//! and every declared index exists after start-up.

use std::sync::Arc;

use futures::TryStreamExt;
use heimdall_host::plugin::{CatalogError, CloneStepSpec, CollectionSpec, Plugin, Registry};
use mongodb::bson::Document;

use crate::helpers::{spawn_app, test_env, unique_db_name};

struct TestPlugin {
    name: &'static str,
    collections: Vec<CollectionSpec>,
    steps: Vec<CloneStepSpec>,
}

#[async_trait::async_trait]
impl Plugin for TestPlugin {
    fn name(&self) -> &'static str {
        self.name
    }
    fn description(&self) -> &'static str {
        "test plugin"
    }
    fn collections(&self) -> Vec<CollectionSpec> {
        self.collections.clone()
    }
    fn clone_steps(&self) -> Vec<CloneStepSpec> {
        self.steps.clone()
    }
}

fn with_extra(p: TestPlugin) -> Vec<Arc<dyn Plugin>> {
    let mut all = heimdall::plugins::all();
    all.push(Arc::new(p));
    all
}

/// The catalog: 17 data plugins + dev, 40 collections, 24 steps in order.
#[test]
fn real_catalog_matches_the_model_spec() {
    let reg = Registry::new(heimdall::plugins::all()).expect("the real catalog is consistent");
    assert_eq!(reg.plugins().len(), 18);
    // The bot's own bookkeeping (migration runs, sign-outs) is internal, not among the 40.
    let data_collections: Vec<_> = reg
        .collections()
        .iter()
        .filter(|c| c.spec.lifetime != heimdall_host::plugin::Lifetime::Internal)
        .collect();
    assert_eq!(data_collections.len(), 40);
    let labels: Vec<_> = reg.clone_steps().iter().map(|s| s.spec.label).collect();
    assert_eq!(labels.len(), 24);
    assert_eq!(labels[0], "Core settings");
    assert_eq!(labels[12], "Modmail messages");
    assert_eq!(labels[23], "Welcome");
    let step_of = |c: &str| {
        reg.clone_steps()
            .iter()
            .find(|s| s.spec.collections.contains(&c))
            .map(|s| s.spec.order)
    };
    assert_eq!(step_of("infractions"), Some(10));
    assert_eq!(step_of("automod_rules"), Some(9));
    assert_eq!(
        step_of("tictactoe_games"),
        None,
        "ephemeral games are never copied"
    );
    assert_eq!(step_of("migration_runs"), None);
    let votes = reg.collection("suggestion_votes").unwrap();
    assert_eq!(votes.parent_reference().unwrap().collection, "suggestions");
}

#[test]
fn duplicate_collection_is_refused() {
    let p = TestPlugin {
        name: "imposter",
        collections: vec![CollectionSpec::new("tags", "Tag")],
        steps: vec![],
    };
    let err = Registry::new(with_extra(p)).unwrap_err();
    assert_eq!(
        err,
        CatalogError::DuplicateCollection {
            collection: "tags",
            first: "tags",
            second: "imposter"
        }
    );
    assert!(err.to_string().contains("\"tags\""), "{err}");
}

#[test]
fn duplicate_plugin_name_is_refused() {
    let p = TestPlugin {
        name: "moderation",
        collections: vec![],
        steps: vec![],
    };
    assert_eq!(
        Registry::new(with_extra(p)).unwrap_err(),
        CatalogError::DuplicatePlugin("moderation")
    );
}

#[test]
fn step_order_follows_references_and_the_plugins_order() {
    // Declared votes first: the catalog copies the polls first, and appends the new
    // plugin's steps after today's 24 without renumbering any of them.
    let p = TestPlugin {
        name: "polls",
        collections: vec![
            CollectionSpec::new("poll_votes", "PollVote").references("pollId", "polls"),
            CollectionSpec::new("polls", "Poll"),
        ],
        steps: vec![
            CloneStepSpec::new("Poll votes", &["poll_votes"]),
            CloneStepSpec::new("Polls", &["polls"]),
        ],
    };
    let before: Vec<(u16, &str)> = Registry::new(heimdall::plugins::all())
        .unwrap()
        .clone_steps()
        .iter()
        .map(|s| (s.spec.order, s.spec.label))
        .collect();
    let reg = Registry::new(with_extra(p)).unwrap();
    let after: Vec<(u16, &str)> = reg
        .clone_steps()
        .iter()
        .map(|s| (s.spec.order, s.spec.label))
        .collect();
    assert_eq!(after[..24], before[..]);
    assert_eq!(after[24..], [(25, "Polls"), (26, "Poll votes")]);
}

#[test]
fn a_cycle_or_a_reference_to_an_uncopied_collection_is_refused() {
    let p = TestPlugin {
        name: "polls",
        collections: vec![
            CollectionSpec::new("poll_votes", "PollVote").references("pollId", "polls"),
            CollectionSpec::new("polls", "Poll").optional_reference("topVote", "poll_votes"),
        ],
        steps: vec![
            CloneStepSpec::new("Poll votes", &["poll_votes"]),
            CloneStepSpec::new("Polls", &["polls"]),
        ],
    };
    let err = Registry::new(with_extra(p)).unwrap_err();
    assert_eq!(err, CatalogError::StepCycle(vec!["Poll votes", "Polls"]));
    assert!(err.to_string().contains("circle"), "{err}");
    // Within one step the declared order counts: a reference to a later collection of it.
    let p = TestPlugin {
        name: "polls",
        collections: vec![
            CollectionSpec::new("poll_votes", "PollVote").references("pollId", "polls"),
            CollectionSpec::new("polls", "Poll"),
        ],
        steps: vec![CloneStepSpec::new("Polls", &["poll_votes", "polls"])],
    };
    assert!(matches!(
        Registry::new(with_extra(p)).unwrap_err(),
        CatalogError::ReferenceNotEarlier {
            collection: "poll_votes",
            target: "polls",
            ..
        }
    ));
    // A reference to an ephemeral collection, which no step copies.
    let p = TestPlugin {
        name: "polls",
        collections: vec![
            CollectionSpec::new("polls", "Poll").references("gameId", "tictactoe_games")
        ],
        steps: vec![CloneStepSpec::new("Polls", &["polls"])],
    };
    assert!(matches!(
        Registry::new(with_extra(p)).unwrap_err(),
        CatalogError::ReferenceNotEarlier { target_step: 0, .. }
    ));
}

#[test]
fn a_durable_collection_without_step_is_refused() {
    let p = TestPlugin {
        name: "polls",
        collections: vec![CollectionSpec::new("polls", "Poll")],
        steps: vec![],
    };
    assert_eq!(
        Registry::new(with_extra(p)).unwrap_err(),
        CatalogError::CollectionNotCopied("polls")
    );
}

#[tokio::test]
async fn start_up_stops_on_a_broken_catalog() {
    let env = test_env(&unique_db_name("broken"));
    let config = heimdall_host::config::Config::from_sources(&env, None).unwrap();
    let p = TestPlugin {
        name: "imposter",
        collections: vec![CollectionSpec::new("guild_configs", "GuildConfig")],
        steps: vec![],
    };
    let err = match heimdall_host::startup::Application::build(config, with_extra(p)).await {
        Ok(_) => panic!("start-up accepted a duplicate collection"),
        Err(e) => e,
    };
    let text = format!("{err:#}");
    assert!(text.contains("guild_configs"), "{text}");
    assert!(text.contains("imposter"), "{text}");
}

/// Every unique, look-up and TTL index of the catalog exists after start-up (read with
/// listIndexes).
#[tokio::test]
async fn start_up_creates_every_index_of_the_catalog() {
    let app = spawn_app().await;
    let mut checked = 0;
    for c in app.data.registry.collections() {
        let spec = &c.spec;
        if spec.unique_key.is_empty() && spec.ttl.is_none() && spec.indexes.is_empty() {
            continue;
        }
        let internal = spec.lifetime == heimdall_host::plugin::Lifetime::Internal;
        let indexes: Vec<Document> = app
            .db
            .collection::<Document>(spec.name)
            .list_indexes()
            .await
            .unwrap()
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .into_iter()
            .map(|m| mongodb::bson::to_document(&m).unwrap())
            .collect();
        // Whether an index on `want` (in order) exists, unique or not.
        let has = |want: &[&str], unique: bool| {
            indexes.iter().any(|ix| {
                let keys: Vec<&str> = ix
                    .get_document("key")
                    .unwrap()
                    .keys()
                    .map(String::as_str)
                    .collect();
                keys == want && ix.get_bool("unique").unwrap_or(false) == unique
            })
        };
        if !spec.unique_key.is_empty() {
            let want: Vec<&str> = spec.unique_key.clone();
            let found = has(&want, true);
            assert!(
                found,
                "{}: no unique index on {want:?}: {indexes:?}",
                spec.name
            );
            checked += !internal as usize;
        }
        if let Some(ttl) = spec.ttl {
            let found = indexes.iter().any(|ix| {
                ix.get_document("key").unwrap().contains_key(ttl.field)
                    && ix.get("expireAfterSeconds").and_then(|v| {
                        v.as_i64()
                            .or(v.as_i32().map(i64::from))
                            .or(v.as_f64().map(|f| f as i64))
                    }) == Some(ttl.expire_after_secs as i64)
            });
            assert!(
                found,
                "{}: no TTL index on {}: {indexes:?}",
                spec.name, ttl.field
            );
            checked += 1;
        }
        for want in &spec.indexes {
            assert!(
                has(want, false),
                "{}: no index on {want:?}: {indexes:?}",
                spec.name
            );
            checked += 1;
        }
    }
    // 35 unique keys, 2 look-up indexes and 3 TTL indexes of the data model (the bot's
    // internal ones checked besides).
    assert_eq!(checked, 40);
}

/// Discord refuses to register a command tree with a bad name or description, and then the
/// bot has no commands at all: every command, subcommand and option is checked here.
#[test]
fn every_slash_command_is_one_discord_accepts() {
    fn valid_name(n: &str) -> bool {
        (1..=32).contains(&n.len())
            && n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    }
    fn check(
        cmd: &poise::Command<heimdall_host::context::Data, heimdall_host::context::Error>,
        path: &str,
    ) {
        let path = format!("{path}/{}", cmd.name);
        assert!(valid_name(&cmd.name), "{path}: bad name");
        let d = cmd.description.as_deref().unwrap_or_default();
        assert!(
            (1..=100).contains(&d.chars().count()),
            "{path}: description {d:?}"
        );
        let mut seen_optional = false;
        for p in &cmd.parameters {
            assert!(valid_name(&p.name), "{path} {}: bad option name", p.name);
            let d = p.description.as_deref().unwrap_or_default();
            assert!(
                (1..=100).contains(&d.chars().count()),
                "{path} {}: description {d:?}",
                p.name
            );
            // Discord wants required options before optional ones.
            assert!(
                !(p.required && seen_optional),
                "{path} {}: required after optional",
                p.name
            );
            seen_optional |= !p.required;
        }
        for s in &cmd.subcommands {
            check(s, &path);
        }
    }
    let registry = Registry::new(heimdall::plugins::all()).unwrap();
    let commands = registry.commands();
    let names: Vec<&str> = commands.iter().map(|c| c.name.as_ref()).collect();
    assert!(
        names.contains(&"migrate") && names.contains(&"about"),
        "{names:?}"
    );
    for c in &commands {
        check(c, "");
    }
    let migrate = commands.iter().find(|c| c.name == "migrate").unwrap();
    // Owner-only through the one owner policy (a check), not poise's own owner list.
    assert!(!migrate.checks.is_empty() && !migrate.owners_only);
    assert!(migrate
        .subcommands
        .iter()
        .all(|s| !s.checks.is_empty() && !s.owners_only));
}

#[test]
fn the_data_model_document_is_the_catalog() {
    let reg = Registry::new(heimdall::plugins::all()).unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/data-model.md");
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == heimdall_host::docs::data_model(&reg),
        "docs/data-model.md differs from the catalog; regenerate it with `cargo run -q -- docs > docs/data-model.md`"
    );
    // Every collection and step is in it.
    for c in reg.collections() {
        assert!(
            on_disk.contains(&format!("`{}`", c.spec.name)),
            "{}",
            c.spec.name
        );
    }
    assert!(on_disk.contains("| 24 | Welcome | welcome |"));
}

/// The crates below the plugins (base, gateway, migration engine, host) name no plugin and no
/// plugin's collection: what they know of plugins comes from the catalog. (The engine's own
/// bookkeeping, which the dev plugin declares for start-up, is the engine's to name.)
#[test]
fn the_crates_below_the_plugins_name_no_plugin_and_no_collection() {
    let reg = Registry::new(heimdall::plugins::all()).unwrap();
    let mut names: Vec<&str> = reg.plugin_names();
    names.extend(
        reg.collections()
            .iter()
            .filter(|c| {
                !(c.plugin == "dev" && c.spec.lifetime == heimdall_host::plugin::Lifetime::Internal)
            })
            .map(|c| c.spec.name),
    );
    fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                rust_files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut hits = Vec::new();
    for krate in ["src/base", "src/gateway", "src/migration", "src/host"] {
        let mut files = Vec::new();
        rust_files(&root.join(krate), &mut files);
        assert!(!files.is_empty(), "{krate} has sources");
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for n in &names {
                if text.contains(&format!("\"{n}\"")) {
                    hits.push(format!(
                        "{} names {n:?}",
                        f.strip_prefix(root).unwrap().display()
                    ));
                }
            }
        }
    }
    assert!(hits.is_empty(), "{hits:#?}");
}

/// Every plugin's strings, and the host's, exist in English and German with the same keys,
/// and every key a plugin's code looks up exists.
#[test]
fn every_plugin_speaks_english_and_german_alike() {
    use heimdall_host::locales::{HOST, LOCALES};
    let mut owners = vec![("host", &HOST)];
    let plugins = heimdall::plugins::all();
    for p in &plugins {
        if let Some(s) = p.strings() {
            owners.push((p.name(), s));
        }
    }
    assert!(owners.len() >= 3, "the host, core and dev have strings");
    for (owner, strings) in owners {
        assert_eq!(strings.locales(), LOCALES, "{owner}'s locales");
        let english = strings.keys("en-US");
        assert!(!english.is_empty(), "{owner} has English strings");
        assert_eq!(
            english,
            strings.keys("de"),
            "{owner}: German differs from English"
        );
        for key in &english {
            let (en, de) = (strings.t(key, &[]), strings.t_in("de", key, &[]));
            assert_ne!(en, *key, "{owner}: {key} formats");
            // Text outside the arguments (`{$name}` when unfilled) must be translated.
            let words = en
                .split('{')
                .map(|part| part.split_once('}').map_or(part, |(_, rest)| rest))
                .any(|part| part.chars().any(char::is_alphabetic));
            if words {
                assert_ne!(en, de, "{owner}: {key} is not translated");
            }
        }
    }
    // The keys the dev plugin's code looks up with its own `t(…)`, read from its sources.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dev = heimdall::plugins::dev::STRINGS.keys("en-US");
    let mut used = 0;
    for file in ["plugins/dev/discord.rs", "plugins/dev/api.rs"] {
        let code = std::fs::read_to_string(root.join(file)).unwrap();
        for (at, _) in code.match_indices("t(") {
            let before = code[..at].chars().next_back().unwrap_or(' ');
            if before == ':' || before == '_' || before.is_alphanumeric() {
                continue; // another crate's `t`, or another function
            }
            // `t(lang, "key", ...)`: the language first, then the key.
            let args = code[at + 2..].trim_start();
            let args = match args.split_once(',') {
                Some((lang, rest))
                    if !lang.is_empty()
                        && lang.chars().all(|c| c.is_alphanumeric() || c == '_') =>
                {
                    rest.trim_start()
                }
                _ => args,
            };
            let Some(literal) = args.strip_prefix('"') else {
                continue; // a key chosen at run time
            };
            let key = literal.split('"').next().unwrap();
            assert!(
                dev.contains(&key.to_string()),
                "{file} looks up {key:?}, which has no text"
            );
            used += 1;
        }
    }
    // Keys chosen at run time are spelled as literals elsewhere in the same files.
    let code = std::fs::read_to_string(root.join("plugins/dev/discord.rs")).unwrap();
    for key in code.split('"').filter(|s| s.starts_with("migrate-")) {
        assert!(
            dev.contains(&key.to_string()),
            "dev names {key:?}, which has no text"
        );
    }
    assert!(used > 25, "the dev plugin's lookups were found ({used})");
}
