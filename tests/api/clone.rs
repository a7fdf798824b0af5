//! Instance Clone against real databases on the test server.

use std::collections::{BTreeMap, HashSet};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use heimdall::seed::{seed_instance, SeedOptions};
use heimdall_host::crypto::Crypto;
use heimdall_host::migration::clone::{self, CloneOptions, MigrationEnv, Outcome};
use heimdall_host::migration::runs::{CollectionResult, RunRecord, RunStatus, RunStore};
use heimdall_host::migration::{EventKind, ProgressEvent, ProgressSink};
use heimdall_host::plugin::{Lifetime, Registry};
use mongodb::bson::{doc, oid::ObjectId, Bson, Document, RawDocumentBuf};
use mongodb::Database;
use tokio_util::sync::CancellationToken;

use crate::helpers::{fresh_db, mongo_uri, test_key, OutputInTime, OTHER_KEY, TEST_KEY};

/// Records every event.
#[derive(Default)]
pub struct Recorder(pub Mutex<Vec<ProgressEvent>>);

impl ProgressSink for Recorder {
    fn emit(&self, e: &ProgressEvent) {
        self.0.lock().unwrap().push(e.clone());
    }
}

pub fn env(target: &Database) -> MigrationEnv {
    MigrationEnv {
        target: target.clone(),
        target_uri: mongo_uri(),
        registry: Registry::new(heimdall::plugins::all()).unwrap().catalog(),
        crypto: Some(Crypto::new(&test_key())),
        lease_ttl: Duration::from_secs(10),
        stall_after: Duration::from_secs(30),
        read_wait: Duration::from_secs(300),
        fail_point: None,
    }
}

pub fn opts(source: &Database) -> CloneOptions {
    opts_named(source.name())
}

/// The options of a clone from database `name` on the test server.
pub fn opts_named(name: &str) -> CloneOptions {
    let mut o = CloneOptions::new(mongo_uri(), "test");
    o.source_db = Some(name.to_string());
    o
}

pub async fn seeded(prefix: &str) -> Database {
    let db = fresh_db(prefix).await;
    seed_instance(&db, &SeedOptions::new(test_key()))
        .await
        .unwrap();
    db
}

pub async fn docs(db: &Database, coll: &str, filter: Document) -> Vec<Document> {
    db.collection::<Document>(coll)
        .find(filter)
        .sort(doc! { "_id": 1 })
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

pub fn durable(reg: &heimdall_host::plugin::Catalog) -> Vec<&'static str> {
    reg.collections()
        .iter()
        .filter(|c| c.spec.lifetime == Lifetime::Durable)
        .map(|c| c.spec.name)
        .collect()
}

/// The id of the first guild a seeded database configures.
async fn first_guild(db: &Database) -> String {
    docs(db, "guild_configs", doc! {}).await[0]
        .get_str("guildId")
        .unwrap()
        .to_string()
}

/// What run `r` did in collection `name`.
fn collection_result<'a>(r: &'a RunRecord, name: &str) -> &'a CollectionResult {
    r.steps
        .iter()
        .flat_map(|s| s.collections.iter())
        .find(|c| c.name == name)
        .unwrap()
}

/// Every document of every collection, with the indexes: to prove the source is untouched.
pub async fn snapshot(db: &Database) -> BTreeMap<String, (Vec<Document>, Vec<String>)> {
    let mut out = BTreeMap::new();
    for name in db.list_collection_names().await.unwrap() {
        let d = docs(db, &name, doc! {}).await;
        let mut ix: Vec<String> = db
            .collection::<Document>(&name)
            .list_index_names()
            .await
            .unwrap();
        ix.sort();
        out.insert(name, (d, ix));
    }
    out
}

/// Resumes run `id` in `e` and returns the record it ended with.
pub async fn resume_with(e: &MigrationEnv, id: &str) -> RunRecord {
    heimdall_host::migration::resume(
        e,
        id,
        None,
        Arc::new(Recorder::default()),
        CancellationToken::new(),
    )
    .await
    .unwrap()
}

/// A clone that must start (not a plan), to its end.
pub async fn run(env: &MigrationEnv, o: CloneOptions) -> RunRecord {
    match clone::start(
        env,
        o,
        Arc::new(Recorder::default()),
        CancellationToken::new(),
    )
    .await
    .unwrap()
    {
        Outcome::Run(r) => *r,
        Outcome::Plan(_) => panic!("expected a run"),
    }
}

/// A seeded source, a fresh target and the env of a run into it, and a whole first clone
/// (checked successful): where a test of what comes after a clone starts.
pub async fn cloned(prefix: &str) -> (Database, Database, MigrationEnv, RunRecord) {
    let source = seeded(&format!("{prefix}_src")).await;
    let target = fresh_db(&format!("{prefix}_dst")).await;
    let e = env(&target);
    let first = run(&e, opts(&source)).await;
    assert!(first.success(), "{:?}", first.message);
    (source, target, e, first)
}

#[tokio::test]
async fn full_clone_equals_the_source_and_a_rerun_imports_nothing() {
    let source = seeded("src").await;
    let target = fresh_db("dst").await;
    let before = snapshot(&source).await;
    let env = env(&target);
    let rec = Arc::new(Recorder::default());
    let Outcome::Run(r) = clone::start(&env, opts(&source), rec.clone(), CancellationToken::new())
        .await
        .unwrap()
    else {
        panic!("a run")
    };
    assert_eq!(r.status, RunStatus::Completed, "{:?}", r.message);
    assert_eq!(r.failed(), 0, "{:?}", r.errors);
    assert!(r.verification.as_ref().unwrap().ok);

    let mut total = 0;
    for coll in durable(&env.registry) {
        let s = docs(&source, coll, doc! {}).await;
        let t = docs(&target, coll, doc! {}).await;
        assert_eq!(s, t, "{coll} differs");
        total += s.len() as u64;
    }
    assert_eq!(r.imported(), total);
    for ephemeral in ["tictactoe_games", "connect4_games"] {
        assert!(!docs(&source, ephemeral, doc! {}).await.is_empty());
        assert!(
            docs(&target, ephemeral, doc! {}).await.is_empty(),
            "{ephemeral} copied"
        );
    }
    // Secrets still readable with the shared key.
    let crypto = Crypto::new(&test_key());
    for d in docs(&target, "guild_envs", doc! {}).await {
        crypto
            .decrypt(d.get_str("encryptedValue").unwrap())
            .unwrap();
    }
    for d in docs(&target, "modmail_configs", doc! {}).await {
        for v in clone::encrypted_values(&d, "categories[].encryptedWebhookToken") {
            crypto.decrypt(&v).unwrap();
        }
    }

    // Events: every step starts and completes, in a sane shape; one final event.
    let events = rec.0.lock().unwrap().clone();
    let starts = events
        .iter()
        .filter(|e| e.kind() == EventKind::StepStart)
        .count();
    let completes: Vec<_> = events
        .iter()
        .filter(|e| e.kind() == EventKind::StepComplete)
        .collect();
    assert_eq!((starts, completes.len()), (24, 24));
    assert_eq!(completes.last().unwrap().completed, 24);
    assert!(events.iter().all(|e| e.run_id == r.id && e.total == 24));
    let msgs: Vec<_> = events
        .iter()
        .filter(|e| e.kind() == EventKind::StepProgress && e.label == "Modmail messages")
        .collect();
    assert!(!msgs.is_empty());
    let last = msgs.last().unwrap();
    assert_eq!(
        last.record_index, last.record_total,
        "the last record event is always sent"
    );
    // While a step runs, its counts move with it: the last record event of a step says what
    // its completion says.
    let done = completes
        .iter()
        .find(|e| e.label == "Modmail messages")
        .unwrap();
    let step_result: heimdall_host::migration::runs::StepResult =
        serde_json::from_value(done.result.clone().unwrap()).unwrap();
    let counts = last.counts.expect("record events carry the step's counts");
    assert_eq!(
        counts,
        heimdall_host::migration::StepCounts::of(&step_result.collections)
    );
    assert!(counts.imported > 0);
    // And its pace: records per second so far, and nothing left at the end.
    let pace = last.pace.expect("record events carry the step's pace");
    assert!(pace.per_second > 0.0, "{pace:?}");
    assert_eq!(pace.eta_ms, Some(0), "{pace:?}");
    assert_eq!(last.collection.as_deref(), Some("modmail_messages"));
    // And the whole run's: every record event carries it; the time left shrinks to nothing.
    let runs: Vec<_> = events
        .iter()
        .filter(|e| e.kind() == EventKind::StepProgress)
        .map(|e| e.run_pace.expect("record events carry the run's pace"))
        .collect();
    let final_pace = runs.last().unwrap();
    assert!(final_pace.per_second > 0.0, "{final_pace:?}");
    assert!(
        final_pace.eta_ms.unwrap() < runs[runs.len() / 2].eta_ms.unwrap_or(u64::MAX),
        "{runs:?}"
    );
    assert!(runs.windows(2).all(|w| w[0].elapsed_ms <= w[1].elapsed_ms));
    let imported: Vec<u64> = msgs.iter().map(|e| e.counts.unwrap().imported).collect();
    assert!(imported.windows(2).all(|w| w[0] <= w[1]), "{imported:?}");
    assert_eq!(events.last().unwrap().kind(), EventKind::Complete);
    assert_eq!(
        events.last().unwrap().result.as_ref().unwrap()["imported"],
        total
    );

    // The record is readable later.
    let stored = RunStore::new(&target).require(&r.id).await.unwrap();
    assert_eq!(stored.status, RunStatus::Completed);
    assert!(!stored.options.source.is_empty());

    // A second run imports nothing and skips everything.
    let again = run(&env, opts(&source)).await;
    assert_eq!(again.status, RunStatus::Completed);
    assert_eq!(again.imported(), 0);
    assert_eq!(again.skipped(), total);
    assert_eq!(snapshot(&source).await, before, "the source was written to");
}

#[tokio::test]
async fn a_rerun_copies_back_only_what_the_target_lost_and_keeps_what_it_changed() {
    let (source, target, env, _) = cloned("lost").await;
    // Behind the runs' back: a message is deleted from the target, a tag edited there.
    let messages = target.collection::<Document>("modmail_messages");
    let lost = docs(&target, "modmail_messages", doc! {}).await[3].clone();
    let lost_id = lost.get("_id").unwrap().clone();
    messages.delete_one(doc! { "_id": &lost_id }).await.unwrap();
    let tag = docs(&target, "tags", doc! {}).await[0].clone();
    let tag_id = tag.get("_id").unwrap().clone();
    target
        .collection::<Document>("tags")
        .update_one(
            doc! { "_id": &tag_id },
            doc! { "$set": { "content": "edited on the target" } },
        )
        .await
        .unwrap();

    let again = run(&env, opts(&source)).await;
    assert_eq!(again.status, RunStatus::Completed, "{:?}", again.message);
    assert_eq!(again.imported(), 1, "only the lost message comes back");
    let (m, t) = (
        collection_result(&again, "modmail_messages"),
        collection_result(&again, "tags"),
    );
    assert_eq!((m.inserted, m.skipped + 1), (1, m.processed), "{m:?}");
    assert_eq!((t.inserted, t.skipped), (0, t.processed), "{t:?}");
    assert_eq!(
        messages.find_one(doc! { "_id": &lost_id }).await.unwrap(),
        Some(lost)
    );
    // The skip policy keeps the target's edit; the verification says it differs, allowed.
    let v = again.verification.as_ref().unwrap();
    assert!(v.ok, "{v:?}");
    let tags = v.collections.iter().find(|c| c.name == "tags").unwrap();
    assert_eq!(tags.differing, 1, "{tags:?}");
    let edited = target
        .collection::<Document>("tags")
        .find_one(doc! { "_id": &tag_id })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(edited.get_str("content").unwrap(), "edited on the target");
    // Everything else the target held whole is as the source has it.
    let same: Vec<&str> = durable(&env.registry)
        .into_iter()
        .filter(|c| *c != "tags")
        .collect();
    assert_same_docs(&source, &target, &same).await;
}

#[tokio::test]
async fn guild_filter_copies_one_guild_with_votes_and_transcripts() {
    let source = seeded("gsrc").await;
    let target = fresh_db("gdst").await;
    // The second guild: mid-sized.
    let guilds: Vec<String> = docs(&source, "guild_configs", doc! {})
        .await
        .iter()
        .map(|d| d.get_str("guildId").unwrap().to_string())
        .collect();
    let infra_count = |g: &String| {
        let g = g.clone();
        let s = source.clone();
        async move {
            s.collection::<Document>("infractions")
                .count_documents(doc! { "guildId": g })
                .await
                .unwrap()
        }
    };
    let mut sized = Vec::new();
    for g in &guilds {
        sized.push((infra_count(g).await, g.clone()));
    }
    sized.sort();
    let guild = sized[sized.len() / 2].1.clone();

    let mut o = opts(&source);
    o.guild = Some(guild.clone());
    let r = run(&env(&target), o).await;
    assert_eq!(r.status, RunStatus::Completed);
    assert!(r.verification.as_ref().unwrap().ok);

    for coll in [
        "infractions",
        "tags",
        "modmail_messages",
        "suggestions",
        "tickets",
        "guild_envs",
    ] {
        let s = docs(&source, coll, doc! { "guildId": &guild }).await;
        let t = docs(&target, coll, doc! {}).await;
        assert!(!s.is_empty());
        assert_eq!(s, t, "{coll}");
    }
    let suggestion_ids: Vec<Bson> = docs(&source, "suggestions", doc! { "guildId": &guild })
        .await
        .iter()
        .map(|d| d.get("_id").unwrap().clone())
        .collect();
    let votes = docs(
        &source,
        "suggestion_votes",
        doc! { "suggestionId": { "$in": suggestion_ids } },
    )
    .await;
    assert!(!votes.is_empty());
    assert_eq!(docs(&target, "suggestion_votes", doc! {}).await, votes);
    let ticket_ids: Vec<Bson> = docs(&source, "tickets", doc! { "guildId": &guild })
        .await
        .iter()
        .map(|d| d.get("_id").unwrap().clone())
        .collect();
    let transcripts = docs(
        &source,
        "ticket_transcripts",
        doc! { "ticketId": { "$in": ticket_ids } },
    )
    .await;
    assert!(!transcripts.is_empty());
    assert_eq!(
        docs(&target, "ticket_transcripts", doc! {}).await,
        transcripts
    );
    for global in ["bot_settings", "reminder_settings"] {
        assert!(
            docs(&target, global, doc! {}).await.is_empty(),
            "{global} copied with a guild filter"
        );
    }
    assert!(
        docs(&target, "reminders", doc! { "guildId": Bson::Null })
            .await
            .is_empty(),
        "DM reminders copied"
    );
    // Nothing of another guild.
    for c in durable(&Registry::new(heimdall::plugins::all()).unwrap()) {
        let other = target
            .collection::<Document>(c)
            .count_documents(doc! { "guildId": { "$exists": true, "$nin": [&guild, Bson::Null] } })
            .await
            .unwrap();
        assert_eq!(other, 0, "{c} holds another guild's documents");
    }
}

/// A seeded source, and a target that already has every automod rule of the source under
/// new `_id`s (source `_id` → target `_id`).
async fn rules_under_other_ids(
    prefix: &str,
) -> (
    Database,
    Database,
    std::collections::HashMap<ObjectId, ObjectId>,
) {
    let source = seeded(&format!("{prefix}src")).await;
    let target = fresh_db(&format!("{prefix}dst")).await;
    let rules = docs(&source, "automod_rules", doc! {}).await;
    let mut remap = std::collections::HashMap::new();
    for mut r in rules {
        let old = r.get_object_id("_id").unwrap();
        let new = ObjectId::new();
        r.insert("_id", new);
        r.remove("presetId");
        remap.insert(old, new);
        target
            .collection::<Document>("automod_rules")
            .insert_one(r)
            .await
            .unwrap();
    }
    (source, target, remap)
}

/// Every infraction of the source that names a rule names the rule's target `_id` in the
/// target; no source rule `_id` is left there.
async fn assert_infractions_remapped(
    source: &Database,
    target: &Database,
    remap: &std::collections::HashMap<ObjectId, ObjectId>,
) {
    let src_inf = docs(
        source,
        "infractions",
        doc! { "ruleId": { "$type": "objectId" } },
    )
    .await;
    assert!(!src_inf.is_empty());
    for s in src_inf {
        let t = target
            .collection::<Document>("infractions")
            .find_one(doc! { "_id": s.get_object_id("_id").unwrap() })
            .await
            .unwrap()
            .unwrap();
        let want = remap[&s.get_object_id("ruleId").unwrap()];
        assert_eq!(
            t.get_object_id("ruleId").unwrap(),
            want,
            "infraction not remapped"
        );
    }
    let stale = target
        .collection::<Document>("infractions")
        .count_documents(doc! { "ruleId": { "$in": remap.keys().map(|k| Bson::ObjectId(*k)).collect::<Vec<_>>() } })
        .await
        .unwrap();
    assert_eq!(stale, 0);
}

#[tokio::test]
async fn existing_rules_under_other_ids_are_remapped_in_infractions() {
    let (source, target, remap) = rules_under_other_ids("r").await;
    let r = run(&env(&target), opts(&source)).await;
    assert_eq!(r.status, RunStatus::Completed);
    let step = r.steps.iter().find(|s| s.label == "Automod rules").unwrap();
    assert_eq!(step.collections[0].skipped, remap.len() as u64);
    assert_eq!(step.collections[0].remapped, remap.len() as u64);
    assert_infractions_remapped(&source, &target, &remap).await;
    assert!(
        r.verification.as_ref().unwrap().ok,
        "references are ignored by the digest"
    );
}

/// A resumed run keeps no `_id` map of what it copied before (it could be as big as the
/// data): the infractions copied after the stop find their rules' new `_id`s on the
/// databases.
#[tokio::test]
async fn remapped_references_hold_across_a_stop_and_resume() {
    let (source, target, remap) = rules_under_other_ids("rr").await;
    let mut o = opts(&source);
    o.batch_size = 10;
    o.parallelism = 1;
    let mut e = env(&target);
    e.fail_point = Some(heimdall_host::migration::FailPoint::after("infractions", 1));
    let stopped = run(&e, o).await;
    assert_eq!(
        stopped.status,
        RunStatus::Cancelled,
        "{:?}",
        stopped.message
    );
    let copied = target
        .collection::<Document>("infractions")
        .count_documents(doc! {})
        .await
        .unwrap();
    assert!(copied > 0, "the first attempt copied no infraction");
    let r = resume_with(&env(&target), &stopped.id).await;
    assert_eq!(r.status, RunStatus::Completed, "{:?}", r.message);
    assert_infractions_remapped(&source, &target, &remap).await;
    assert!(r.verification.as_ref().unwrap().ok);
}

#[tokio::test]
async fn a_key_mismatch_is_refused_before_anything_is_written() {
    let source = seeded("ksrc").await;
    let target = fresh_db("kdst").await;
    let mut e = env(&target);
    e.crypto = Some(Crypto::new(&OTHER_KEY.parse().unwrap()));
    let err = clone::start(
        &e,
        opts(&source),
        Arc::new(Recorder::default()),
        CancellationToken::new(),
    )
    .await
    .unwrap_err();
    let u = heimdall_host::error::user_error(&err).expect("user error");
    assert_eq!(u.code, "key_mismatch");
    assert!(u.message.contains("--allow-key-mismatch"), "{}", u.message);
    assert!(
        target.list_collection_names().await.unwrap().is_empty(),
        "the target was written to"
    );

    let mut o = opts(&source);
    o.allow_key_mismatch = true;
    let r = run(&e, o).await;
    assert_eq!(r.status, RunStatus::Completed);
    assert!(
        r.warnings.iter().any(|w| w.contains("ENCRYPTION_KEY")),
        "{:?}",
        r.warnings
    );
}

#[tokio::test]
async fn dry_run_plans_and_writes_nothing() {
    let source = seeded("dsrc").await;
    let target = fresh_db("ddst").await;
    let mut o = opts(&source);
    o.dry_run = true;
    let Outcome::Plan(plan) = clone::start(
        &env(&target),
        o,
        Arc::new(Recorder::default()),
        CancellationToken::new(),
    )
    .await
    .unwrap() else {
        panic!("a plan")
    };
    assert!(
        target.list_collection_names().await.unwrap().is_empty(),
        "a dry run wrote"
    );
    let infra = plan
        .steps
        .iter()
        .flat_map(|s| s.collections.iter())
        .find(|c| c.name == "infractions")
        .unwrap();
    let n = source
        .collection::<Document>("infractions")
        .count_documents(doc! {})
        .await
        .unwrap();
    assert_eq!((infra.found, infra.to_insert, infra.to_skip), (n, n, 0));
    let eph = plan.steps.iter().find(|s| s.order == 7).unwrap();
    assert_eq!(eph.skipped_collections.len(), 2);
}

#[tokio::test]
async fn bad_documents_are_recorded_and_the_run_completes() {
    let source = seeded("bsrc").await;
    let target = fresh_db("bdst").await;
    let guild = first_guild(&source).await;
    let broken = [
        (
            "infractions",
            doc! { "_id": ObjectId::new(), "guildId": &guild, "userId": "1", "moderatorId": "2", "type": "warn", "source": "manual" },
        ),
        (
            "tags",
            doc! { "_id": ObjectId::new(), "guildId": 123_456_789_012_345_678i64, "name": "numeric-guild", "content": "x" },
        ),
        (
            "modmail_messages",
            doc! { "_id": ObjectId::new(), "guildId": &guild, "conversationId": "not-an-id", "content": "x" },
        ),
    ];
    let mut broken_ids = HashSet::new();
    for (c, d) in &broken {
        broken_ids.insert(d.get_object_id("_id").unwrap().to_hex());
        source
            .collection::<Document>(c)
            .insert_one(d.clone())
            .await
            .unwrap();
    }
    let dangling_id = ObjectId::new();
    let mut dangling = docs(&source, "infractions", doc! {}).await[0].clone();
    dangling.insert("_id", ObjectId::new());
    dangling.insert("caseNumber", 999_999);
    dangling.insert("ruleId", dangling_id);
    source
        .collection::<Document>("infractions")
        .insert_one(dangling.clone())
        .await
        .unwrap();

    let r = run(&env(&target), opts(&source)).await;
    assert_eq!(r.status, RunStatus::Completed);
    assert_eq!(r.failed(), 3);
    assert_eq!(r.error_count, 3);
    let reasons: Vec<_> = r
        .errors
        .iter()
        .map(|e| (e.collection.as_str(), e.reason.as_str()))
        .collect();
    assert!(
        r.errors.iter().all(|e| broken_ids.contains(&e.source_id)),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|(c, why)| *c == "infractions" && why.contains("caseNumber")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|(c, why)| *c == "tags" && why.contains("Int64")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|(c, why)| *c == "modmail_messages" && why.contains("conversationId")),
        "{reasons:?}"
    );
    let inf = r.steps.iter().find(|s| s.label == "Infractions").unwrap();
    assert_eq!(inf.collections[0].dangling, 1);
    // The dangling reference is copied as it is.
    let t = target
        .collection::<Document>("infractions")
        .find_one(doc! { "_id": dangling.get_object_id("_id").unwrap() })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.get_object_id("ruleId").unwrap(), dangling_id);
    let v = r.verification.unwrap();
    let vi = v
        .collections
        .iter()
        .find(|c| c.name == "infractions")
        .unwrap();
    // The failed infraction is the only one not in the target, and the run listed it.
    assert_eq!((vi.failed, vi.missing), (1, 0), "{vi:?}");
    assert!(v.ok);
}

/// A reference to a parent read long before its child (more parents than a run keeps as
/// recent) is not dangling; a missing parent is, each reference once, in a run straight
/// through and in one stopped twice among them and resumed.
#[tokio::test]
async fn dangling_references_are_counted_exactly_across_stops() {
    let source = seeded("dglsrc").await;
    let target = fresh_db("dgldst").await;
    let rule = docs(&source, "automod_rules", doc! {}).await[0].clone();
    let infraction = docs(&source, "infractions", doc! {}).await[0].clone();
    // 70,000 more rules, read in `_id` order before every infraction.
    let mut old_rules = Vec::new();
    for chunk in 0..7 {
        let batch: Vec<Document> = (0..10_000)
            .map(|i| {
                let mut d = rule.clone();
                d.insert("_id", ObjectId::new());
                d.insert("name", format!("old-{chunk}-{i}"));
                d
            })
            .collect();
        old_rules.extend(
            batch
                .iter()
                .take(3)
                .map(|d| d.get_object_id("_id").unwrap()),
        );
        source
            .collection::<Document>("automod_rules")
            .insert_many(batch)
            .await
            .unwrap();
    }
    // Infractions citing the oldest rules, and rules that were never there, mixed.
    let missing: Vec<ObjectId> = (0..5).map(|_| ObjectId::new()).collect();
    let added: Vec<Document> = (0..60)
        .map(|i| {
            let mut d = infraction.clone();
            d.insert("_id", ObjectId::new());
            d.insert("caseNumber", 2_000_000 + i);
            let cited = if i % 3 == 0 {
                missing[i as usize % missing.len()]
            } else {
                old_rules[i as usize % old_rules.len()]
            };
            d.insert("ruleId", cited);
            d
        })
        .collect();
    source
        .collection::<Document>("infractions")
        .insert_many(added)
        .await
        .unwrap();
    // What dangles, counted here from the source alone.
    let rule_ids: HashSet<ObjectId> = docs(&source, "automod_rules", doc! {})
        .await
        .iter()
        .map(|d| d.get_object_id("_id").unwrap())
        .collect();
    let all = docs(&source, "infractions", doc! {}).await;
    let expected = all
        .iter()
        .filter(|d| {
            d.get_object_id("ruleId")
                .is_ok_and(|r| !rule_ids.contains(&r))
        })
        .count() as u64;
    assert_eq!(expected, 20);

    // Straight through, the rules' `_id`s this run read answer for them (see
    // `parent_ids`): the same count, and what they do not hold is asked of the source.
    let straight = fresh_db("dgldst0").await;
    let mut o = opts(&source);
    o.batch_size = 10;
    let r = run(&env(&straight), o.clone()).await;
    assert_eq!(r.status, RunStatus::Completed, "{:?}", r.message);
    let inf = r.steps.iter().find(|s| s.label == "Infractions").unwrap();
    assert_eq!(inf.collections[0].dangling, expected);
    assert!(r.verification.unwrap().ok);

    // Stopped twice among the added infractions (the last 60), then run to the end.
    let first_stop = (all.len() as u64 - 60) / 10 + 2;
    let mut e = env(&target);
    e.fail_point = Some(heimdall_host::migration::FailPoint::after(
        "infractions",
        first_stop,
    ));
    let r = run(&e, o).await;
    assert_eq!(r.status, RunStatus::Cancelled, "{:?}", r.message);
    e.fail_point = Some(heimdall_host::migration::FailPoint::after("infractions", 2));
    let r = resume_with(&e, &r.id).await;
    assert_eq!(r.status, RunStatus::Cancelled, "{:?}", r.message);
    let r = resume_with(&env(&target), &r.id).await;
    assert_eq!(r.status, RunStatus::Completed, "{:?}", r.message);
    let inf = r.steps.iter().find(|s| s.label == "Infractions").unwrap();
    assert_eq!(inf.collections[0].name, "infractions");
    assert_eq!(inf.collections[0].dangling, expected);
    assert!(r.verification.unwrap().ok);
    // The rules' step found none dangling among its own references either.
    let rules = r.steps.iter().find(|s| s.label == "Automod rules").unwrap();
    assert_eq!(rules.collections[0].dangling, 0);
}

#[tokio::test]
async fn a_document_a_parser_would_change_arrives_byte_for_byte_and_verified() {
    let source = seeded("rawsrc").await;
    let target = fresh_db("rawdst").await;
    let guild = first_guild(&source).await;
    // A field twice: parsed into a map, one of the two values would be lost.
    let id = ObjectId::new();
    let mut raw = RawDocumentBuf::new();
    raw.append("_id", id);
    raw.append("guildId", guild.as_str());
    raw.append("name", "twice");
    raw.append("content", "the first");
    raw.append("content", "the second");
    source
        .collection::<RawDocumentBuf>("tags")
        .insert_one(&raw)
        .await
        .unwrap();
    let stored = source
        .collection::<RawDocumentBuf>("tags")
        .find_one(doc! { "_id": id })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.as_bytes(), raw.as_bytes(), "the server keeps both");

    let r = run(&env(&target), opts(&source)).await;
    assert!(r.success(), "{:?}", r.message);
    let copied = target
        .collection::<RawDocumentBuf>("tags")
        .find_one(doc! { "_id": id })
        .await
        .unwrap()
        .expect("copied");
    assert_eq!(copied.as_bytes(), raw.as_bytes());
    assert!(r.verification.unwrap().ok);
}

/// A copy into an empty collection inserts without reading the target first: a document a
/// live bot writes there meanwhile is found by the insert, kept as the bot wrote it, counted
/// skipped, and the verification says it differs (allowed, as for any target edit).
#[tokio::test]
async fn a_document_arriving_in_the_target_mid_copy_is_kept_and_skipped() {
    let source = seeded("arrsrc").await;
    let target = fresh_db("arrdst").await;
    let mut o = opts(&source);
    o.batch_size = 10;
    let mut e = env(&target);
    e.fail_point = Some(heimdall_host::migration::FailPoint::arrival("tags", 2));
    let r = run(&e, o).await;
    assert!(r.success(), "{:?}", r.message);
    let tags = collection_result(&r, "tags");
    assert!(tags.processed > 10, "{tags:?}");
    assert_eq!(
        (tags.failed, tags.skipped, tags.inserted + 1),
        (0, 1, tags.processed),
        "{tags:?}"
    );
    let arrived = docs(&target, "tags", doc! { "arrivedMeanwhile": true }).await;
    assert_eq!(
        arrived.len(),
        1,
        "the bot's write was overwritten or doubled"
    );
    assert_eq!(
        docs(&target, "tags", doc! {}).await.len(),
        docs(&source, "tags", doc! {}).await.len()
    );
    let v = r.verification.as_ref().unwrap();
    assert!(v.ok, "{v:?}");
    let vt = v.collections.iter().find(|c| c.name == "tags").unwrap();
    assert_eq!((vt.differing, vt.missing), (1, 0), "{vt:?}");
}

#[tokio::test]
async fn bad_input_is_refused_before_anything_is_written() {
    let source = seeded("isrc").await;
    let target = fresh_db("idst").await;
    let e = env(&target);
    let legacy = fresh_db("ilegacy").await;
    heimdall::seed::seed_legacy(&legacy, &SeedOptions::new(test_key()))
        .await
        .unwrap();
    let dead_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cases: Vec<(&str, CloneOptions)> = vec![
        ("invalid_uri", {
            let mut o = opts(&source);
            o.source_uri = "localhost:27017".into();
            o
        }),
        ("invalid_uri", {
            let mut o = opts(&source);
            o.source_uri = "mongodb://host:notaport".into();
            o
        }),
        ("source_unreachable", {
            let mut o = opts(&source);
            o.source_uri = format!("mongodb://127.0.0.1:{dead_port}");
            o
        }),
        ("source_db_not_found", {
            let mut o = opts(&source);
            o.source_db = Some("no_such_db".into());
            o
        }),
        ("source_is_target", {
            let mut o = opts(&source);
            o.source_db = Some(target.name().into());
            o
        }),
        ("invalid_guild_id", {
            let mut o = opts(&source);
            o.guild = Some("my-guild".into());
            o
        }),
        ("guild_not_in_source", {
            let mut o = opts(&source);
            o.guild = Some("123456789012345678".into());
            o
        }),
        ("not_a_heimdall_database", {
            let mut o = opts(&source);
            o.source_db = Some(legacy.name().into());
            o
        }),
    ];
    for (code, o) in cases {
        let err = clone::start(
            &e,
            o,
            Arc::new(Recorder::default()),
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
        let u = heimdall_host::error::user_error(&err)
            .unwrap_or_else(|| panic!("{code}: not a user error: {err:#}"));
        assert_eq!(u.code, code, "{}", u.message);
    }
    // `source_db_not_found` lists the databases that exist.
    let mut o = opts(&source);
    o.source_db = Some("no_such_db".into());
    let err = clone::start(
        &e,
        o,
        Arc::new(Recorder::default()),
        CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains(source.name()), "{err}");
    assert!(
        target.list_collection_names().await.unwrap().is_empty(),
        "a refusal wrote to the target"
    );

    // A second run while one is active.
    let store = RunStore::new(&target);
    let lease = store
        .acquire("someone-else", Duration::from_secs(60))
        .await
        .unwrap();
    let err = clone::start(
        &e,
        opts(&source),
        Arc::new(Recorder::default()),
        CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        heimdall_host::error::user_error(&err).unwrap().code,
        "migration_active"
    );
    lease.release().await.unwrap();
}

/// Cancels the run as step `step` starts: the copy stops at its next batch boundary,
/// however fast the batches go (progress events are throttled in time, so a fast copy may
/// report none before its end).
struct CancelAtStep {
    token: CancellationToken,
    step: u16,
}

impl ProgressSink for CancelAtStep {
    fn emit(&self, e: &ProgressEvent) {
        if e.kind() == EventKind::StepStart && e.step == self.step {
            self.token.cancel();
        }
    }
}

#[tokio::test]
async fn cancel_then_resume_ends_as_an_uninterrupted_run() {
    let source = seeded("csrc").await;
    let target = fresh_db("cdst").await;
    let e = env(&target);
    let token = CancellationToken::new();
    let mut o = opts(&source);
    o.batch_size = 50;
    let Outcome::Run(r) = clone::start(
        &e,
        o,
        Arc::new(CancelAtStep {
            token: token.clone(),
            step: 13,
        }),
        token,
    )
    .await
    .unwrap() else {
        panic!()
    };
    assert_eq!(r.status, RunStatus::Cancelled);
    let partial = target
        .collection::<Document>("modmail_messages")
        .count_documents(doc! {})
        .await
        .unwrap();
    let all = source
        .collection::<Document>("modmail_messages")
        .count_documents(doc! {})
        .await
        .unwrap();
    assert!(
        partial < all,
        "the cancel did not stop the copy ({partial} of {all})"
    );

    let resumed = clone::resume(
        &e,
        &r.id,
        None,
        Arc::new(Recorder::default()),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        resumed.status,
        RunStatus::Completed,
        "{:?}",
        resumed.message
    );
    assert_eq!(resumed.attempts, 2);
    assert!(resumed.verification.as_ref().unwrap().ok);
    for coll in durable(&e.registry) {
        assert_eq!(
            docs(&source, coll, doc! {}).await,
            docs(&target, coll, doc! {}).await,
            "{coll}"
        );
    }
    // Counts add up across the two attempts: every document was handled once.
    let total: u64 = resumed
        .steps
        .iter()
        .map(|s| s.sum(|c| c.inserted + c.skipped))
        .sum();
    let expected: u64 = {
        let mut n = 0;
        for c in durable(&e.registry) {
            n += source
                .collection::<Document>(c)
                .count_documents(doc! {})
                .await
                .unwrap();
        }
        n
    };
    assert_eq!(total, expected);
}

pub fn cli(target: &Database) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_heimdall"));
    c.env("MONGODB_URI", mongo_uri())
        .env("MONGODB_DB", target.name())
        .env("ENCRYPTION_KEY", TEST_KEY)
        .env("HEIMDALL_CONFIG", "/nonexistent/heimdall.toml")
        .env_remove("DISCORD_TOKEN");
    c
}

#[tokio::test]
async fn a_killed_cli_run_resumes_to_the_same_target() {
    let source = seeded("ksrc2").await;
    let target = fresh_db("kdst2").await;
    let mut child = cli_clone(cli(&target), &source)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the run is well under way, then kill -9.
    let store = RunStore::new(&target);
    let run_id = wait_for_steps(&target, 8).await;
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    let crashed = store.require(&run_id).await.unwrap();
    assert_eq!(
        crashed.status,
        RunStatus::Running,
        "a killed run stays 'running' until resumed"
    );

    let out = cli(&target)
        .args(["migrate", "resume", &run_id, "--json"])
        .output_in_time();
    assert_cli_copied_all(&out, &source, &target).await;
}

#[tokio::test]
async fn an_operator_sets_how_many_steps_copy_at_once() {
    let source = seeded("parsrc").await;
    let target = fresh_db("pardst").await;
    let mut cmd = cli(&target);
    cmd.env("HEIMDALL_MIGRATION_PARALLELISM", "1");
    let out = cli_clone(cmd, &source).output_in_time();
    let v = assert_cli_copied_all(&out, &source, &target).await;
    assert_eq!(v["options"]["parallelism"], 1, "{}", v["options"]);
}

/// A CLI run's output says it completed and verified, and the target holds every durable
/// document of the source; its JSON.
async fn assert_cli_copied_all(
    out: &std::process::Output,
    source: &Database,
    target: &Database,
) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "completed");
    assert_eq!(v["success"], true);
    assert_eq!(v["verification"]["ok"], true);
    assert_same_docs(
        source,
        target,
        &durable(&Registry::new(heimdall::plugins::all()).unwrap()),
    )
    .await;
    v
}

/// `cmd` as `heimdall migrate clone` of `source`, in batches of 10, with a JSON result.
pub fn cli_clone(mut cmd: Command, source: &Database) -> Command {
    cmd.args([
        "migrate",
        "clone",
        "--source",
        &mongo_uri(),
        "--source-db",
        source.name(),
        "--batch-size",
        "10",
        "--json",
    ]);
    cmd
}

/// Waits (at most a minute) until the newest run of `target` has `steps` steps done; its id.
pub async fn wait_for_steps(target: &Database, steps: usize) -> String {
    let store = RunStore::new(target);
    let start = Instant::now();
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the run never got going"
        );
        if let Some(r) = store.list(1).await.unwrap().into_iter().next() {
            if r.steps
                .iter()
                .filter(|s| s.status == heimdall_host::migration::runs::StepStatus::Completed)
                .count()
                >= steps
            {
                return r.id;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts that each of `colls` holds the same documents in `a` and `b`.
pub async fn assert_same_docs(a: &Database, b: &Database, colls: &[&str]) {
    for c in colls {
        assert_eq!(
            docs(a, c, doc! {}).await,
            docs(b, c, doc! {}).await,
            "{c} differs"
        );
    }
}

#[tokio::test]
async fn cli_json_result_and_exit_codes() {
    let source = seeded("jsrc").await;
    let target = fresh_db("jdst").await;
    source
        .collection::<Document>("tags")
        .insert_one(
            doc! { "_id": ObjectId::new(), "guildId": "123456789012345678", "content": "no name" },
        )
        .await
        .unwrap();
    let out = cli(&target)
        .args([
            "migrate",
            "clone",
            "--source",
            &mongo_uri(),
            "--source-db",
            source.name(),
            "--json",
        ])
        .output_in_time();
    assert_eq!(
        out.status.code(),
        Some(2),
        "completed with a failed record: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "runId",
        "mode",
        "status",
        "success",
        "imported",
        "skipped",
        "failed",
        "steps",
        "errors",
        "verification",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert_eq!(v["mode"], "clone");
    assert_eq!(v["failed"], 1);
    assert_eq!(v["success"], false);
    assert_eq!(v["steps"].as_array().unwrap().len(), 24);

    let out = cli(&target)
        .args([
            "migrate",
            "clone",
            "--source",
            &mongo_uri(),
            "--source-db",
            source.name(),
            "--guild",
            "abc",
        ])
        .output_in_time();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a guild id"));

    let out = cli(&target)
        .args(["migrate", "status", v["runId"].as_str().unwrap(), "--json"])
        .output_in_time();
    assert!(out.status.success());
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["runId"], v["runId"]);
    assert_eq!(s["active"], false);
}

#[tokio::test]
async fn the_source_comes_from_a_file_standard_input_or_the_environment() {
    use std::io::Write;
    let source = seeded("secsrc").await;
    let target = fresh_db("secdst").await;
    let plan = |mut c: Command| {
        c.args([
            "migrate",
            "clone",
            "--source-db",
            source.name(),
            "--dry-run",
            "--json",
        ]);
        c
    };
    let planned = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["steps"].as_array().unwrap().len(), 24);
    };
    // A file, readable by its owner only.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("source-uri");
    std::fs::write(&file, format!("{}\n", mongo_uri())).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let mut c = plan(cli(&target));
    c.arg("--source-file").arg(&file);
    let out = c.output_in_time();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("readable by every user"));
    planned(out);
    // Standard input.
    let mut c = plan(cli(&target));
    let mut child = c
        .args(["--source", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{}\n", mongo_uri()).as_bytes())
        .unwrap();
    planned(child.wait_with_output().unwrap());
    // The environment.
    let mut c = plan(cli(&target));
    c.env("HEIMDALL_SOURCE_URI", mongo_uri());
    planned(c.output_in_time());

    // None given: what to do, in plain words; an empty file: said so.
    let out = plan(cli(&target)).output_in_time();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--source-file PATH") && err.contains("HEIMDALL_SOURCE_URI"),
        "{err}"
    );
    std::fs::write(&file, "\n").unwrap();
    let mut c = plan(cli(&target));
    let out = c.arg("--source-file").arg(&file).output_in_time();
    assert!(String::from_utf8_lossy(&out.stderr).contains("empty source connection string"));
    // --help names the safe ways and never shows the variable's value.
    let out = cli(&target)
        .args(["migrate", "clone", "--help"])
        .env("HEIMDALL_SOURCE_URI", "mongodb://u:hunter2@db:27017")
        .output_in_time();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("--source-file") && help.contains("HEIMDALL_SOURCE_URI"),
        "{help}"
    );
    assert!(!help.contains("hunter2"), "{help}");
}
