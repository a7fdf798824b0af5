//! Legacy Import against a database written by `heimdall seed --legacy`.

use std::sync::Arc;

use heimdall::seed::{legacy_fixtures as fx, seed_legacy, SeedOptions};
use heimdall_host::migration::legacy::engine::{self, LegacyOptions, LegacyPlan, Outcome};
use heimdall_host::migration::runs::{RunRecord, RunStatus};
use heimdall_host::migration::{EventKind, ProgressEvent, ProgressSink};
use mongodb::bson::{doc, oid::ObjectId, Bson, DateTime, Document};
use mongodb::Database;
use tokio_util::sync::CancellationToken;

use crate::clone::{docs, env, snapshot, Recorder};
use crate::helpers::{fresh_db, mongo_uri, test_key};

/// A fresh database named from `prefix`, seeded with the old bot's sample data.
pub(crate) async fn legacy_db(prefix: &str) -> Database {
    let db = fresh_db(prefix).await;
    seed_legacy(&db, &SeedOptions::new(test_key()))
        .await
        .unwrap();
    db
}

/// Options of a legacy import from `source`.
pub(crate) fn opts(source: &Database) -> LegacyOptions {
    let mut o = LegacyOptions::new(mongo_uri(), "test");
    o.source_db = Some(source.name().to_string());
    o
}

/// Documents without `createdAt` (a default of "now" when the old bot had none).
pub fn strip_created(v: Vec<Document>) -> Vec<Document> {
    v.into_iter()
        .map(|mut d| {
            d.remove("createdAt");
            d
        })
        .collect()
}

/// Asserts `target` holds what `reference` does in every collection a legacy import
/// writes (`createdAt` aside), naming the first that differs and `reference`'s origin.
pub async fn assert_imported_alike(reference: &Database, target: &Database, origin: &str) {
    for coll in [
        "guild_configs",
        "tags",
        "suggestions",
        "suggestion_votes",
        "modmail_conversations",
        "modmail_messages",
        "infractions",
        "reminders",
        "role_button_panels",
    ] {
        assert_eq!(
            strip_created(docs(reference, coll, doc! {}).await),
            strip_created(docs(target, coll, doc! {}).await),
            "{coll} differs from {origin}"
        );
    }
}

/// A legacy import into `target` that must start, to its end.
pub async fn import(target: &Database, o: LegacyOptions, sink: Arc<dyn ProgressSink>) -> RunRecord {
    import_in(&env(target), o, sink).await
}

/// A legacy import in `e` that must start, to its end.
pub async fn import_in(
    e: &heimdall_host::migration::clone::MigrationEnv,
    o: LegacyOptions,
    sink: Arc<dyn ProgressSink>,
) -> RunRecord {
    match engine::start(e, o, sink, CancellationToken::new())
        .await
        .unwrap()
    {
        Outcome::Run(r) => *r,
        Outcome::Plan(_) => panic!("expected a run"),
    }
}

async fn one(db: &Database, coll: &str, filter: Document) -> Document {
    db.collection::<Document>(coll)
        .find_one(filter.clone())
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no {coll} matching {filter}"))
}

fn oid(hex: &str) -> ObjectId {
    ObjectId::parse_str(hex).unwrap()
}

const T2020: i64 = 1_577_836_800_000;
const DAY: i64 = 86_400_000;

#[tokio::test]
async fn every_step_maps_the_known_records_field_by_field() {
    let source = legacy_db("lsrc").await;
    let target = fresh_db("ldst").await;
    let before = snapshot(&source).await;
    let r = import(&target, opts(&source), Arc::new(Recorder::default())).await;
    assert_eq!(r.status, RunStatus::Completed, "{:?}", r.message);
    assert!(r.verification.as_ref().unwrap().ok);
    for s in &r.steps {
        let c = &s.collections[0];
        assert_eq!(
            c.inserted + c.skipped + c.failed,
            c.total,
            "step {} does not add up",
            s.label
        );
    }

    // 1 Settings: strings, Int64 and exact Double guild ids; "" and null mean "not set".
    let g = one(&target, "guild_configs", doc! { "guildId": fx::GUILD }).await;
    assert_eq!(
        (g.get_str("prefix").unwrap(), g.get_str("locale").unwrap()),
        ("?", "de")
    );
    let w = one(&target, "welcome_configs", doc! { "guildId": fx::GUILD }).await;
    assert_eq!(w.get_str("channelId").unwrap(), "310000000000000001");
    assert_eq!(w.get_str("message").unwrap(), "Hallo {user} 👋");
    assert_eq!(
        w.get("leaveMessage"),
        Some(&Bson::Null),
        "an empty leave message is not set"
    );
    assert!(w.get_bool("enabled").unwrap());
    let l = one(&target, "logging_configs", doc! { "guildId": fx::GUILD }).await;
    assert_eq!(
        l.get_document("channels").unwrap(),
        &doc! { "messages": "310000000000000002", "moderation": "310000000000000003" }
    );
    let m = one(&target, "moderation_configs", doc! { "guildId": fx::GUILD }).await;
    assert_eq!(
        (
            m.get_str("muteRoleId").unwrap(),
            m.get_str("modLogChannelId").unwrap()
        ),
        ("320000000000000001", "310000000000000003")
    );
    let sc = one(&target, "suggestion_configs", doc! { "guildId": fx::GUILD }).await;
    assert_eq!(sc.get_str("channelId").unwrap(), "310000000000000004");

    let int64 = fx::GUILD_INT64.to_string();
    let g2 = one(&target, "guild_configs", doc! { "guildId": &int64 }).await;
    assert_eq!(
        (g2.get_str("prefix").unwrap(), g2.get_str("locale").unwrap()),
        ("!", "en-US"),
        "defaults for empty and null"
    );
    assert!(target
        .collection::<Document>("welcome_configs")
        .find_one(doc! { "guildId": &int64 })
        .await
        .unwrap()
        .is_none());
    let exact = format!("{}", fx::GUILD_DOUBLE_EXACT as u64);
    one(&target, "guild_configs", doc! { "guildId": &exact }).await;
    let w3 = one(&target, "welcome_configs", doc! { "guildId": &exact }).await;
    assert_eq!(
        w3.get_str("channelId").unwrap(),
        "310000000000000005",
        "Int64 channel id as a string"
    );
    let m3 = one(&target, "moderation_configs", doc! { "guildId": &exact }).await;
    assert_eq!(m3.get("muteRoleId"), Some(&Bson::Null));
    assert!(target
        .collection::<Document>("logging_configs")
        .find_one(doc! { "guildId": &exact })
        .await
        .unwrap()
        .is_none());
    let lost = r
        .errors
        .iter()
        .find(|e| e.source_id == fx::SETTINGS_LOST_ID)
        .expect("lost-precision guild reported");
    assert!(
        lost.reason.contains("guildID") && lost.reason.contains("2^53"),
        "{}",
        lost.reason
    );
    assert_eq!(lost.collection, "guildsettings");

    // 2 Tags: trimmed lower-case names, the older of two colliding tags wins.
    let rules = one(
        &target,
        "tags",
        doc! { "guildId": fx::GUILD, "name": "rules" },
    )
    .await;
    assert_eq!(rules.get_object_id("_id").unwrap(), oid(fx::TAG_RULES_OLD));
    assert_eq!(rules.get_str("content").unwrap(), "Be nice. 🙂");
    assert_eq!(rules.get_i32("uses").unwrap(), 12, "Double 12.0 becomes 12");
    assert_eq!(rules.get_str("authorId").unwrap(), "330000000000000001");
    assert_eq!(
        rules.get_datetime("createdAt").unwrap().timestamp_millis(),
        T2020
    );
    let conflict = r
        .skips
        .iter()
        .find(|s| s.source_id == fx::TAG_RULES_NEW)
        .expect("the newer tag is reported");
    assert!(
        conflict.reason.contains("conflict") && conflict.reason.contains(fx::TAG_RULES_OLD),
        "{}",
        conflict.reason
    );
    assert!(r
        .errors
        .iter()
        .any(|e| e.source_id == fx::TAG_EMPTY && e.reason.contains("content")));
    let uni = one(
        &target,
        "tags",
        doc! { "guildId": fx::GUILD, "name": "ünïcödé 日本" },
    )
    .await;
    assert_eq!(uni.get_i32("uses").unwrap(), 0);

    // 3 Suggestions: status encodings, votes as documents, counts from votes.
    let s1 = one(
        &target,
        "suggestions",
        doc! { "_id": oid(fx::SUGGESTION_APPROVED) },
    )
    .await;
    assert_eq!(
        (s1.get_i32("number").unwrap(), s1.get_str("status").unwrap()),
        (1, "approved")
    );
    assert_eq!(
        (
            s1.get_i32("upvotes").unwrap(),
            s1.get_i32("downvotes").unwrap()
        ),
        (2, 1)
    );
    assert_eq!(s1.get_str("messageId").unwrap(), "350000000000000001");
    let votes = docs(
        &target,
        "suggestion_votes",
        doc! { "suggestionId": oid(fx::SUGGESTION_APPROVED) },
    )
    .await;
    let mut v: Vec<(String, String)> = votes
        .iter()
        .map(|d| {
            (
                d.get_str("userId").unwrap().into(),
                d.get_str("vote").unwrap().into(),
            )
        })
        .collect();
    v.sort();
    assert_eq!(
        v,
        vec![
            ("340000000000000002".into(), "up".into()),
            ("340000000000000003".into(), "up".into()),
            ("340000000000000004".into(), "down".into()),
        ]
    );
    let s2 = one(
        &target,
        "suggestions",
        doc! { "_id": oid(fx::SUGGESTION_DENIED_NUMERIC) },
    )
    .await;
    assert_eq!(
        (s2.get_i32("number").unwrap(), s2.get_str("status").unwrap()),
        (2, "denied")
    );
    assert_eq!(s2.get_str("authorId").unwrap(), "340000000000000001");
    assert_eq!(
        s2.get_i32("upvotes").unwrap() + s2.get_i32("downvotes").unwrap(),
        0
    );
    let s3 = one(
        &target,
        "suggestions",
        doc! { "_id": oid(fx::SUGGESTION_IMPLEMENTED) },
    )
    .await;
    assert_eq!(
        (s3.get_i32("number").unwrap(), s3.get_str("status").unwrap()),
        (3, "implemented")
    );
    assert_eq!(
        (
            s3.get_i32("upvotes").unwrap(),
            s3.get_i32("downvotes").unwrap()
        ),
        (0, 1)
    );

    // 4 Modmail: numbered by createdAt then _id; every message a document.
    let number = |id: &str| {
        let t = target.clone();
        let id = oid(id);
        async move {
            one(&t, "modmail_conversations", doc! { "_id": id })
                .await
                .get_i32("ticketNumber")
                .unwrap()
        }
    };
    assert_eq!(number(fx::MODMAIL_OLDEST).await, 1);
    assert_eq!(number(fx::MODMAIL_TIE_A).await, 2, "ties go by _id");
    assert_eq!(number(fx::MODMAIL_TIE_B).await, 3);
    assert_eq!(number(fx::MODMAIL_LONG).await, 4);
    let long = docs(
        &target,
        "modmail_messages",
        doc! { "conversationId": oid(fx::MODMAIL_LONG) },
    )
    .await;
    assert_eq!(long.len(), fx::MODMAIL_LONG_MESSAGES);
    let mut times: Vec<i64> = long
        .iter()
        .map(|m| m.get_datetime("createdAt").unwrap().timestamp_millis())
        .collect();
    times.sort();
    assert_eq!(times[0], T2020 + 20 * DAY);
    assert_eq!(
        times[times.len() - 1],
        T2020 + 20 * DAY + (fx::MODMAIL_LONG_MESSAGES as i64 - 1) * 1000
    );
    assert_eq!(
        long.iter()
            .filter(|m| m.get_bool("isStaff").unwrap())
            .count(),
        fx::MODMAIL_LONG_MESSAGES / 3
    );
    let tie = docs(
        &target,
        "modmail_messages",
        doc! { "conversationId": oid(fx::MODMAIL_TIE_A) },
    )
    .await;
    assert_eq!(tie.len(), 2);
    assert!(tie
        .iter()
        .any(|m| m.get_array("attachments").unwrap().len() == 1));
    let conv = one(
        &target,
        "modmail_conversations",
        doc! { "_id": oid(fx::MODMAIL_LONG) },
    )
    .await;
    assert_eq!(
        conv.get("closedAt"),
        Some(&Bson::Null),
        "an empty closedAt is not set"
    );

    // 5 Moderation cases: caseID kept, the rest numbered after the highest by date.
    for c in fx::WARNING_CASE_IDS {
        let i = one(
            &target,
            "infractions",
            doc! { "guildId": fx::GUILD, "caseNumber": c },
        )
        .await;
        assert_eq!(i.get_str("type").unwrap(), "mute");
    }
    let old = one(
        &target,
        "infractions",
        doc! { "_id": oid(fx::WARNING_NO_CASE_OLD) },
    )
    .await;
    let new = one(
        &target,
        "infractions",
        doc! { "_id": oid(fx::WARNING_NO_CASE_NEW) },
    )
    .await;
    assert_eq!(
        (
            old.get_i32("caseNumber").unwrap(),
            new.get_i32("caseNumber").unwrap()
        ),
        (6, 7)
    );
    assert_eq!(
        new.get_str("type").unwrap(),
        "warn",
        "type defaults to warn"
    );
    assert_eq!(new.get("reason"), Some(&Bson::Null));
    assert_eq!(
        (
            new.get_str("source").unwrap(),
            new.get_i32("points").unwrap()
        ),
        ("legacy", 1)
    );
    assert_eq!(new.get("ruleId"), Some(&Bson::Null));
    assert_eq!(
        new.get_datetime("createdAt")
            .unwrap()
            .try_to_rfc3339_string()
            .unwrap(),
        "2020-03-01T00:00:00Z"
    );
    assert!(r
        .errors
        .iter()
        .any(|e| e.source_id == fx::WARNING_LOST_USER && e.reason.contains("userID")));

    // 6 Reminders: past ones skipped as expired, missing or "" guild = DM reminder.
    assert!(target
        .collection::<Document>("reminders")
        .find_one(doc! { "_id": oid(fx::REMINDER_PAST) })
        .await
        .unwrap()
        .is_none());
    assert!(r
        .skips
        .iter()
        .any(|s| s.source_id == fx::REMINDER_PAST && s.reason.starts_with("expired")));
    let dm = one(&target, "reminders", doc! { "_id": oid(fx::REMINDER_DM) }).await;
    assert_eq!(dm.get("guildId"), Some(&Bson::Null));
    let dm2 = one(
        &target,
        "reminders",
        doc! { "_id": oid(fx::REMINDER_EMPTY_GUILD) },
    )
    .await;
    assert_eq!(dm2.get("guildId"), Some(&Bson::Null));
    assert_eq!(dm2.get_str("userId").unwrap(), "390000000000000002");
    let gr = one(
        &target,
        "reminders",
        doc! { "_id": oid(fx::REMINDER_GUILD) },
    )
    .await;
    assert_eq!(gr.get_str("guildId").unwrap(), fx::GUILD);
    assert!(
        gr.get_datetime("remindAt").unwrap().timestamp_millis()
            > DateTime::now().timestamp_millis()
    );

    // 7 Reaction roles: one button per role, labelled with its emoji.
    let p = one(
        &target,
        "role_button_panels",
        doc! { "_id": oid(fx::REACTION_PANEL) },
    )
    .await;
    let buttons = p.get_array("buttons").unwrap();
    assert_eq!(buttons.len(), 3);
    let b1 = buttons[1].as_document().unwrap();
    assert_eq!(
        (b1.get_str("roleId").unwrap(), b1.get_str("label").unwrap()),
        ("320000000000000003", "🎨")
    );

    // The old bot's database is untouched.
    assert_eq!(snapshot(&source).await, before);
}

#[tokio::test]
async fn a_rerun_imports_nothing_and_keeps_ticket_numbers() {
    let source = legacy_db("rsrc").await;
    let target = fresh_db("rdst").await;
    let first = import(&target, opts(&source), Arc::new(Recorder::default())).await;
    // The verification read every record of every step again.
    let v = first.verification.as_ref().unwrap();
    for (step, c) in first.steps.iter().zip(&v.collections) {
        assert_eq!(c.source, step.collections[0].total, "step {}", step.label);
        assert_eq!(c.found + c.failed, c.source, "step {}", step.label);
    }
    let numbers = docs(&target, "modmail_conversations", doc! {}).await;
    let second = import(&target, opts(&source), Arc::new(Recorder::default())).await;
    assert_eq!(second.status, RunStatus::Completed);
    assert_eq!(second.imported(), 0);
    assert_eq!(
        second.skipped() + second.failed(),
        first.imported() + first.skipped() + first.failed()
    );
    assert_eq!(
        docs(&target, "modmail_conversations", doc! {}).await,
        numbers,
        "ticket numbers changed"
    );
}

/// A thread whose conversation the target already has under another `_id` (same guild and
/// ticket number) is a conflict: skipped with its reason, none of its messages written,
/// the target's conversation left as it was; every other thread imported.
#[tokio::test]
async fn a_conversation_already_in_the_target_keeps_its_thread_out() {
    let source = legacy_db("csrc").await;
    let target = fresh_db("cdst").await;
    let theirs = their_first_ticket(&target, fx::GUILD).await;
    let r = import(&target, opts(&source), Arc::new(Recorder::default())).await;
    assert_eq!(r.status, RunStatus::Completed, "{:?}", r.message);
    // Their conversation is not the import's, yet the run is verified: the skipped
    // thread is accounted for.
    assert!(r.verification.as_ref().unwrap().ok, "{:?}", r.verification);
    let skip = r
        .skips
        .iter()
        .find(|s| s.source_id == fx::MODMAIL_OLDEST)
        .expect("the conflicting thread is reported");
    assert!(skip.reason.contains("conflict"), "{}", skip.reason);
    let messages = target
        .collection::<Document>("modmail_messages")
        .count_documents(doc! { "conversationId": oid(fx::MODMAIL_OLDEST) })
        .await
        .unwrap();
    assert_eq!(
        messages, 0,
        "the conflicting thread's messages were written"
    );
    assert_eq!(
        one(
            &target,
            "modmail_conversations",
            doc! { "guildId": fx::GUILD, "ticketNumber": 1 }
        )
        .await,
        theirs
    );
    let long = target
        .collection::<Document>("modmail_messages")
        .count_documents(doc! { "conversationId": oid(fx::MODMAIL_LONG) })
        .await
        .unwrap();
    assert_eq!(long, fx::MODMAIL_LONG_MESSAGES as u64);
}

/// Verification checks several batches side by side. With a single connection to the
/// target, none of them may wait on another's: the import ends, verified.
#[tokio::test]
async fn an_import_over_one_connection_to_the_target_ends_verified() {
    let source = legacy_db("osrc").await;
    let name = fresh_db("odst").await.name().to_string();
    let uri = mongo_uri();
    let sep = if uri.contains('?') { '&' } else { '?' };
    let client = mongodb::Client::with_uri_str(format!("{uri}{sep}maxPoolSize=1"))
        .await
        .unwrap();
    let target = client.database(&name);
    let mut o = opts(&source);
    o.batch_size = 5;
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        import(&target, o, Arc::new(Recorder::default())),
    )
    .await
    .expect("the import never ended");
    assert_eq!(r.status, RunStatus::Completed, "{:?}", r.message);
    assert!(r.verification.as_ref().unwrap().ok);
}

#[tokio::test]
async fn guild_filter_imports_one_guild() {
    let source = legacy_db("gsrc").await;
    let target = fresh_db("gdst").await;
    let mut o = opts(&source);
    o.guild = Some(fx::GUILD.into());
    let r = import(&target, o, Arc::new(Recorder::default())).await;
    assert_eq!(r.status, RunStatus::Completed, "{:?}", r.message);
    for coll in [
        "guild_configs",
        "tags",
        "suggestions",
        "modmail_conversations",
        "modmail_messages",
        "infractions",
        "role_button_panels",
    ] {
        let all = target
            .collection::<Document>(coll)
            .count_documents(doc! {})
            .await
            .unwrap();
        let ours = target
            .collection::<Document>(coll)
            .count_documents(doc! { "guildId": fx::GUILD })
            .await
            .unwrap();
        assert!(all > 0, "{coll} empty");
        assert_eq!(all, ours, "{coll} holds another guild's data");
    }
    assert_eq!(
        target
            .collection::<Document>("reminders")
            .count_documents(doc! { "guildId": Bson::Null })
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        r.steps[3].collections[0].total, 4,
        "the fixture guild has 4 conversations"
    );
}

/// Asserts that `plan` foresaw, step by step, what `run` found, imported, skipped and failed.
fn plan_matches(plan: &LegacyPlan, run: &RunRecord) {
    for (p, s) in plan.steps.iter().zip(&run.steps) {
        let c = &s.collections[0];
        assert_eq!(
            (p.found, p.to_import, p.to_skip, p.errors),
            (c.total, c.inserted, c.skipped, c.failed),
            "the preview of step {}",
            p.label
        );
    }
}

/// What a dry run of `o` into `target` plans (it writes nothing).
async fn preview(target: &Database, mut o: LegacyOptions) -> LegacyPlan {
    o.dry_run = true;
    let sink = Arc::new(Recorder::default());
    match engine::start(&env(target), o, sink, CancellationToken::new()).await {
        Ok(Outcome::Plan(plan)) => plan,
        _ => panic!("a dry run makes a plan"),
    }
}

#[tokio::test]
async fn dry_run_writes_nothing_and_matches_the_real_run() {
    let source = legacy_db("dsrc").await;
    let target = fresh_db("ddst").await;
    let plan = preview(&target, opts(&source)).await;
    assert!(
        target.list_collection_names().await.unwrap().is_empty(),
        "a dry run wrote"
    );
    let r = import(&target, opts(&source), Arc::new(Recorder::default())).await;
    plan_matches(&plan, &r);
    assert!(plan.errors.iter().any(|e| e.source_id == fx::TAG_EMPTY));
}

#[tokio::test]
async fn modmail_progress_events_come_in_order() {
    let source = legacy_db("psrc").await;
    let target = fresh_db("pdst").await;
    let rec = Arc::new(Recorder::default());
    let mut o = opts(&source);
    o.batch_size = 5;
    let r = import(&target, o, rec.clone()).await;
    assert_eq!(r.status, RunStatus::Completed);
    let events: Vec<ProgressEvent> = rec
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.step == 4)
        .cloned()
        .collect();
    assert_eq!(events.first().unwrap().kind(), EventKind::StepStart);
    assert_eq!(events.last().unwrap().kind(), EventKind::StepComplete);
    let progress: Vec<u64> = events
        .iter()
        .filter(|e| e.kind() == EventKind::StepProgress)
        .map(|e| e.record_index.unwrap())
        .collect();
    assert!(progress.len() >= 2, "{progress:?}");
    assert!(
        progress.windows(2).all(|w| w[0] <= w[1]),
        "out of order: {progress:?}"
    );
    let total = r.steps[3].collections[0].total;
    // The step's counts move with its records, and end where the step's result does.
    let last_counts = events
        .iter()
        .rfind(|e| e.kind() == EventKind::StepProgress)
        .and_then(|e| e.counts)
        .expect("record events carry the step's counts");
    assert_eq!(
        last_counts,
        heimdall_host::migration::StepCounts::of(&r.steps[3].collections)
    );
    assert_eq!(
        *progress.last().unwrap(),
        total,
        "the last record event is always sent"
    );
    assert!(events.iter().all(
        |e| e.mode == heimdall_host::migration::MigrationMode::Legacy && e.label == "Modmail"
    ));
}

#[tokio::test]
async fn refusals_name_what_is_wrong() {
    let source = legacy_db("bsrc").await;
    let target = fresh_db("bdst").await;
    let mut o = opts(&source);
    o.modmail_collection = "tickets".into();
    let err = engine::start(
        &env(&target),
        o,
        Arc::new(Recorder::default()),
        CancellationToken::new(),
    )
    .await
    .unwrap_err();
    let u = heimdall_host::error::user_error(&err).unwrap();
    assert_eq!(u.code, "modmail_collection_not_found");
    assert!(
        u.message.contains("modmail") && u.message.contains("guildsettings"),
        "lists the collections: {}",
        u.message
    );

    let heimdall_db = crate::clone::seeded("hsrc").await;
    let err = engine::start(
        &env(&target),
        opts(&heimdall_db),
        Arc::new(Recorder::default()),
        CancellationToken::new(),
    )
    .await
    .unwrap_err();
    let u = heimdall_host::error::user_error(&err).unwrap();
    assert_eq!(u.code, "not_a_legacy_database");
    assert!(u.message.contains("migrate clone"), "{}", u.message);
    assert!(target.list_collection_names().await.unwrap().is_empty());
}

/// Cancels once the modmail step has made progress.
struct CancelInModmail(CancellationToken);

impl ProgressSink for CancelInModmail {
    fn emit(&self, e: &ProgressEvent) {
        if e.step == 4 && e.kind() == EventKind::StepProgress && e.record_index.unwrap_or(0) > 0 {
            self.0.cancel();
        }
    }
}

#[tokio::test]
async fn cancel_then_resume_matches_an_uninterrupted_import() {
    let source = legacy_db("csrc").await;
    let target = fresh_db("cdst").await;
    let reference = fresh_db("cref").await;
    import(&reference, opts(&source), Arc::new(Recorder::default())).await;

    let token = CancellationToken::new();
    let mut o = opts(&source);
    o.batch_size = 5;
    let Outcome::Run(r) = engine::start(
        &env(&target),
        o,
        Arc::new(CancelInModmail(token.clone())),
        token,
    )
    .await
    .unwrap() else {
        panic!()
    };
    assert_eq!(r.status, RunStatus::Cancelled);
    let resumed = crate::clone::resume_with(&env(&target), &r.id).await;
    assert_eq!(
        resumed.status,
        RunStatus::Completed,
        "{:?}",
        resumed.message
    );
    assert!(resumed.verification.as_ref().unwrap().ok);
    assert_imported_alike(&reference, &target, "an uninterrupted import").await;
}

/// One record per batch imports what bigger batches do: the same documents, counts and
/// reasons. Writing one batch's other documents while the next batch's first documents go
/// in must not let a newer record take a key from an older one in the batch before it: of
/// the two tags named "rules" (one batch each here), the older is kept.
#[tokio::test]
async fn one_record_per_batch_imports_what_bigger_batches_do() {
    let source = legacy_db("bsrc").await;
    let target = fresh_db("bdst").await;
    let reference = fresh_db("bref").await;
    let whole = import(&reference, opts(&source), Arc::new(Recorder::default())).await;
    let mut o = opts(&source);
    o.batch_size = 1;
    let r = import(&target, o, Arc::new(Recorder::default())).await;
    assert_eq!(r.status, RunStatus::Completed, "{:?}", r.message);
    assert!(r.verification.as_ref().unwrap().ok, "{:?}", r.verification);
    let counts = |r: &RunRecord| -> Vec<(u64, u64, u64, u64)> {
        r.steps
            .iter()
            .flat_map(|s| &s.collections)
            .map(|c| (c.processed, c.inserted, c.skipped, c.failed))
            .collect()
    };
    assert_eq!(counts(&r), counts(&whole), "counts per step");
    let reasons = |v: &[heimdall_host::migration::RecordError]| {
        let mut v: Vec<(String, String)> = v
            .iter()
            .map(|e| (e.source_id.clone(), e.reason.clone()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(reasons(&r.skips), reasons(&whole.skips), "skips");
    assert_eq!(reasons(&r.errors), reasons(&whole.errors), "errors");
    assert_imported_alike(&reference, &target, "the import in bigger batches").await;
    let rules = one(
        &target,
        "tags",
        doc! { "guildId": fx::GUILD, "name": "rules" },
    )
    .await;
    assert_eq!(rules.get_object_id("_id").unwrap(), oid(fx::TAG_RULES_OLD));
}

#[tokio::test]
async fn the_import_creates_the_targets_unique_indexes_first() {
    let source = legacy_db("lidx_src").await;
    let target = fresh_db("lidx_dst").await;
    let r = import(&target, opts(&source), Arc::new(Recorder::default())).await;
    assert_eq!(r.status, RunStatus::Completed);
    // Into a database the bot never started on: the unique keys exist, so a second import
    // (or a duplicate legacy record) cannot write a document twice.
    for (coll, index) in [
        ("tags", "guildId_1_name_1"),
        ("suggestion_votes", "suggestionId_1_userId_1"),
    ] {
        let names = target
            .collection::<Document>(coll)
            .list_index_names()
            .await
            .unwrap();
        assert!(names.iter().any(|n| n == index), "{coll}: {names:?}");
    }
    let again = import(&target, opts(&source), Arc::new(Recorder::default())).await;
    assert_eq!(again.imported(), 0);
}

/// Threads far longer than one part (old bots kept tens of thousands of messages in one)
/// are mapped a part at a time: every message arrives under the `_id` mapping the whole
/// thread gives it, and the run verifies them all; a thread with one bad message deep
/// inside is refused whole, naming the message, with nothing of it written.
#[tokio::test]
async fn a_long_thread_is_imported_whole_or_not_at_all() {
    use heimdall_host::migration::legacy::derived_id;
    use std::collections::HashSet;
    let source = fresh_db("lpsrc").await;
    let target = fresh_db("lpdst").await;
    let (good, bad) = (ObjectId::new(), ObjectId::new());
    let t0 = 1_600_000_000_000i64;
    let thread = |id: ObjectId, n: usize, bad_at: Option<usize>| {
        let messages: Vec<Bson> = (0..n)
            .map(|i| {
                if Some(i) == bad_at {
                    return Bson::String("not a message".into());
                }
                Bson::Document(doc! {
                    "authorID": "200000000000000001",
                    "content": format!("message {i} {}", "x".repeat(60)),
                    "createdAt": DateTime::from_millis(t0 + i as i64 * 1000),
                    "isStaff": i % 2 == 0,
                    "attachments": [],
                })
            })
            .collect();
        doc! {
            "_id": id, "guildID": "100000000000000001", "userID": "300000000000000001",
            "createdAt": DateTime::from_millis(t0), "status": "closed", "messages": messages,
        }
    };
    source
        .collection::<Document>("modmail")
        .insert_many(vec![
            thread(good, 12_000, None),
            thread(bad, 9_500, Some(9_000)),
        ])
        .await
        .unwrap();
    let r = import(&target, opts(&source), Arc::new(Recorder::default())).await;
    assert_eq!(r.status, RunStatus::Completed, "{:?}", r.message);
    assert!(r.verification.as_ref().unwrap().ok, "{:?}", r.verification);
    let ids: HashSet<ObjectId> = docs(&target, "modmail_messages", doc! { "conversationId": good })
        .await
        .iter()
        .map(|m| m.get_object_id("_id").unwrap())
        .collect();
    let whole: HashSet<ObjectId> = (0..12_000u64)
        .map(|i| derived_id(&Bson::ObjectId(good), i + 1, (t0 / 1000) as u32 + i as u32))
        .collect();
    assert_eq!(ids.len(), 12_000);
    assert!(
        ids == whole,
        "messages under other _ids than whole mapping gives"
    );
    let refused = r
        .errors
        .iter()
        .find(|e| e.source_id == bad.to_hex())
        .expect("the thread with a bad message is reported");
    assert!(
        refused.reason.contains("messages[9000]"),
        "{}",
        refused.reason
    );
    for (coll, field) in [
        ("modmail_conversations", "_id"),
        ("modmail_messages", "conversationId"),
    ] {
        let n = target
            .collection::<Document>(coll)
            .count_documents(doc! { field: bad })
            .await
            .unwrap();
        assert_eq!(n, 0, "{coll}: part of the refused thread was written");
    }
}

/// A run stopped while a long thread's later parts were being written (two are written at
/// once) left holes in the middle and at the end of it: the next run's preview and the run
/// itself count the thread as imported, fill every hole, and verify; the run after that
/// finds it all there.
#[tokio::test]
async fn a_long_thread_cut_off_midway_is_finished_by_the_next_run() {
    let source = fresh_db("lhsrc").await;
    let target = fresh_db("lhdst").await;
    let id = ObjectId::new();
    let t0 = LONG_THREAD_START;
    source
        .collection::<Document>("modmail")
        .insert_one(long_thread(id, "100000000000000003", 12_000))
        .await
        .unwrap();
    let first = import(&target, opts(&source), Arc::new(Recorder::default())).await;
    assert_eq!(first.status, RunStatus::Completed, "{:?}", first.message);
    let msgs = target.collection::<Document>("modmail_messages");
    let at = |i: i64| DateTime::from_millis(t0 + i * 1000);
    let holes = msgs
        .delete_many(doc! { "conversationId": id, "$or": [
            { "createdAt": { "$gte": at(3_000), "$lt": at(9_000) } },
            { "createdAt": { "$gte": at(11_990) } },
        ] })
        .await
        .unwrap();
    assert_eq!(holes.deleted_count, 6_010);
    let plan = preview(&target, opts(&source)).await;
    let again = import(&target, opts(&source), Arc::new(Recorder::default())).await;
    assert_eq!(again.status, RunStatus::Completed, "{:?}", again.message);
    assert_eq!(again.imported(), 1, "the thread counts as imported");
    assert!(
        again.errors.is_empty() && again.skips.is_empty(),
        "{again:?}"
    );
    assert!(
        again.verification.as_ref().unwrap().ok,
        "{:?}",
        again.verification
    );
    plan_matches(&plan, &again);
    let n = msgs
        .count_documents(doc! { "conversationId": id })
        .await
        .unwrap();
    assert_eq!(n, 12_000, "every hole filled");
    let third = import(&target, opts(&source), Arc::new(Recorder::default())).await;
    assert_eq!(third.imported(), 0);
    assert!(third.skips.is_empty(), "{:?}", third.skips);
}

/// While a long thread is written part by part, owners keep hearing that the modmail step
/// moves (a run silent for too long is reported stalled): progress comes part after part,
/// not only once the thread is done.
#[tokio::test]
async fn a_long_thread_keeps_reporting_progress_while_written() {
    let source = fresh_db("lbsrc").await;
    let target = fresh_db("lbdst").await;
    source
        .collection::<Document>("modmail")
        .insert_one(long_thread(ObjectId::new(), "100000000000000004", 12_000))
        .await
        .unwrap();
    let rec = Arc::new(Recorder::default());
    let r = import(&target, opts(&source), rec.clone()).await;
    assert_eq!(r.status, RunStatus::Completed, "{:?}", r.message);
    let during: Vec<u64> = rec
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.step == 4 && e.kind() == EventKind::StepProgress)
        .filter_map(|e| e.record_index)
        .collect();
    // 12,000 messages of about 130 bytes come in at least five parts of 256 KB.
    assert!(
        during.iter().filter(|&&i| i == 1).count() >= 4,
        "progress while the thread was written: {during:?}"
    );
}

/// A long thread whose conversation the target already has under another `_id` is a
/// conflict like a short one: skipped with its reason, not one of its messages written,
/// whichever part they would have come in.
#[tokio::test]
async fn a_long_thread_in_conflict_keeps_all_its_parts_out() {
    let source = fresh_db("lcfsrc").await;
    let target = fresh_db("lcfdst").await;
    let (guild, id) = ("100000000000000002", ObjectId::new());
    source
        .collection::<Document>("modmail")
        .insert_one(long_thread(id, guild, 6_000))
        .await
        .unwrap();
    let theirs = their_first_ticket(&target, guild).await;
    let r = import(&target, opts(&source), Arc::new(Recorder::default())).await;
    assert_eq!(r.status, RunStatus::Completed, "{:?}", r.message);
    let skip = r
        .skips
        .iter()
        .find(|s| s.source_id == id.to_hex())
        .expect("the conflicting thread is reported");
    assert!(skip.reason.contains("conflict"), "{}", skip.reason);
    let written = target
        .collection::<Document>("modmail_messages")
        .count_documents(doc! { "conversationId": id })
        .await
        .unwrap();
    assert_eq!(
        written, 0,
        "messages of the conflicting thread were written"
    );
    assert_eq!(
        docs(&target, "modmail_conversations", doc! {}).await,
        vec![theirs]
    );
}

/// When the first message of a [`long_thread`] was written; one a second after it.
const LONG_THREAD_START: i64 = 1_600_000_000_000;

/// A closed legacy modmail thread `id` in `guild` with `n` messages of about a hundred
/// bytes each, from [`LONG_THREAD_START`] one a second.
fn long_thread(id: ObjectId, guild: &str, n: usize) -> Document {
    let t0 = LONG_THREAD_START;
    let messages: Vec<Bson> = (0..n)
        .map(|i| {
            Bson::Document(doc! {
                "authorID": "200000000000000001",
                "content": format!("message {i} {}", "x".repeat(60)),
                "createdAt": DateTime::from_millis(t0 + i as i64 * 1000),
                "attachments": [],
            })
        })
        .collect();
    doc! {
        "_id": id, "guildID": guild, "userID": "300000000000000001",
        "createdAt": DateTime::from_millis(t0), "status": "closed", "messages": messages,
    }
}

/// The target's own conversation with ticket 1 in `guild` (not imported: another `_id`).
async fn their_first_ticket(target: &Database, guild: &str) -> Document {
    let theirs = doc! {
        "_id": ObjectId::new(), "guildId": guild, "ticketNumber": 1, "userId": "1",
        "status": "open", "createdAt": DateTime::now(),
    };
    target
        .collection::<Document>("modmail_conversations")
        .insert_one(theirs.clone())
        .await
        .unwrap();
    theirs
}
