//! Catch-up (`sync`): after a clone, copy what is new in the source, update what changed,
//! list what is gone (never delete it), journaled so it can be undone.

use futures::TryStreamExt;
use heimdall_host::migration::clone::{self, Outcome};
use heimdall_host::migration::runs::RunRecord;
use heimdall_host::migration::undo::UndoOptions;
use mongodb::bson::{doc, oid::ObjectId, Bson, Document};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use crate::clone::{docs, env, opts, run, seeded, Recorder};
use crate::helpers::fresh_db;
use crate::undo::{state, undo_run};

/// The plan of a dry run.
async fn plan_of(e: &clone::MigrationEnv, o: clone::CloneOptions) -> clone::Plan {
    match clone::start(
        e,
        o,
        Arc::new(Recorder::default()),
        CancellationToken::new(),
    )
    .await
    .unwrap()
    {
        Outcome::Plan(p) => p,
        Outcome::Run(_) => panic!("a plan"),
    }
}

fn sum(r: &RunRecord, f: fn(&heimdall_host::migration::runs::CollectionResult) -> u64) -> u64 {
    r.steps.iter().map(|s| s.sum(f)).sum()
}

#[tokio::test]
async fn a_sync_copies_the_new_updates_the_changed_and_lists_the_gone() {
    let (source, target, e, first) = crate::clone::cloned("sync").await;
    let after_first = state(&target).await;

    // Nothing changed: a sync finds nothing to do and writes nothing.
    let mut o = opts(&source);
    o.sync = true;
    let idle = run(&e, o.clone()).await;
    assert!(idle.success(), "{:?}", idle.message);
    assert_eq!(
        (
            sum(&idle, |c| c.inserted),
            sum(&idle, |c| c.updated),
            sum(&idle, |c| c.gone)
        ),
        (0, 0, 0)
    );
    assert!(
        idle.journaled.is_empty(),
        "nothing written, nothing journaled"
    );
    assert_eq!(state(&target).await, after_first);

    // The old instance keeps running: tags are edited, added and deleted there.
    let tags = source.collection::<Document>("tags");
    let all = docs(&source, "tags", doc! {}).await;
    let guild = all[0].get_str("guildId").unwrap().to_string();
    for d in &all[..3] {
        tags.update_one(
            doc! { "_id": d.get("_id").unwrap().clone() },
            doc! { "$set": { "content": "edited in the old instance" } },
        )
        .await
        .unwrap();
    }
    let gone: Vec<_> = all[3..5]
        .iter()
        .map(|d| d.get("_id").unwrap().clone())
        .collect();
    tags.delete_many(doc! { "_id": { "$in": gone.clone() } })
        .await
        .unwrap();
    tags.insert_many([
        doc! { "_id": ObjectId::new(), "guildId": &guild, "name": "new-one", "content": "a", "authorId": "1", "uses": 0 },
        doc! { "_id": ObjectId::new(), "guildId": &guild, "name": "new-two", "content": "b", "authorId": "1", "uses": 0 },
    ])
    .await
    .unwrap();
    // And a modmail message is moved to another conversation: only its reference changes.
    let messages = docs(&source, "modmail_messages", doc! {}).await;
    let moved = messages[0].clone();
    let elsewhere = messages
        .iter()
        .map(|m| m.get("conversationId").unwrap().clone())
        .find(|c| Some(c) != moved.get("conversationId"))
        .unwrap();
    source
        .collection::<Document>("modmail_messages")
        .update_one(
            doc! { "_id": moved.get("_id").unwrap().clone() },
            doc! { "$set": { "conversationId": elsewhere.clone() } },
        )
        .await
        .unwrap();

    // The plan says exactly that.
    let mut dry = o.clone();
    dry.dry_run = true;
    let plan = plan_of(&e, dry).await;
    assert!(plan.sync);
    let planned = |name: &str| {
        let c = plan
            .steps
            .iter()
            .flat_map(|s| &s.collections)
            .find(|c| c.name == name)
            .unwrap();
        (c.to_insert, c.to_update, c.gone)
    };
    assert_eq!(planned("tags"), (2, 3, 2));
    assert_eq!(planned("modmail_messages"), (0, 1, 0));
    let others: u64 = plan
        .steps
        .iter()
        .flat_map(|s| &s.collections)
        .filter(|c| c.name != "tags" && c.name != "modmail_messages")
        .map(|c| c.to_insert + c.to_update + c.gone)
        .sum();
    assert_eq!(others, 0, "nothing else changed");

    let sync = run(&e, o).await;
    assert!(sync.success(), "{:?} {:?}", sync.message, sync.verification);
    assert_eq!(
        (
            sum(&sync, |c| c.inserted),
            sum(&sync, |c| c.updated),
            sum(&sync, |c| c.gone)
        ),
        (2, 4, 2)
    );
    let moved_now = target
        .collection::<Document>("modmail_messages")
        .find_one(doc! { "_id": moved.get("_id").unwrap().clone() })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(moved_now.get("conversationId"), Some(&elsewhere));
    // The target now holds the source's tags, and the gone ones still, listed.
    let target_tags = docs(&target, "tags", doc! {}).await;
    for d in docs(&source, "tags", doc! {}).await {
        assert!(
            target_tags.contains(&d),
            "{d} is in the target as in the source"
        );
    }
    for id in &gone {
        assert!(
            target_tags.iter().any(|d| d.get("_id") == Some(id)),
            "gone ones are kept"
        );
    }
    let listed: Vec<_> = sync
        .skips
        .iter()
        .filter(|s| s.reason.contains("gone from the source"))
        .collect();
    assert_eq!(listed.len(), 2, "{:?}", sync.skips);
    assert!(listed[0].reason.contains(&first.id));

    // The sync is journaled: undone, the target is as it was after the first clone.
    let undone = undo_run(&e, UndoOptions::new(&sync.id, "test")).await;
    assert!(undone.success(), "{:?}", undone.message);
    assert_eq!(state(&target).await, after_first);
}

#[tokio::test]
async fn a_sync_of_one_guild_lists_only_that_guilds_gone_documents() {
    let (source, target, e, _) = crate::clone::cloned("syncg").await;
    let tags = source.collection::<Document>("tags");
    let all = docs(&source, "tags", doc! {}).await;
    let g1 = all[0].get_str("guildId").unwrap().to_string();
    let other = all
        .iter()
        .find(|d| d.get_str("guildId").unwrap() != g1)
        .expect("tags in two guilds")
        .clone();
    let mine = all[0].clone();
    tags.delete_many(doc! { "_id": { "$in": [mine.get("_id").unwrap().clone(), other.get("_id").unwrap().clone()] } })
        .await
        .unwrap();
    let mut o = opts(&source);
    o.sync = true;
    o.guild = Some(g1);
    let sync = run(&e, o).await;
    assert!(sync.success(), "{:?}", sync.message);
    assert_eq!(sum(&sync, |c| c.gone), 1, "only this guild's");
    let ids: Vec<_> = target
        .collection::<Document>("tags")
        .find(doc! {})
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.get("_id").unwrap().clone())
        .collect();
    assert!(ids.contains(mine.get("_id").unwrap()) && ids.contains(other.get("_id").unwrap()));
}

/// Deleted source documents wherever their `_id`s fall (before the first, between two
/// batches, after the last, another `_id` type) are found gone; a document the target made
/// itself is not. With `mixed`, the source keeps `_id`s of two types (checked the long way).
async fn gone_anywhere(prefix: &str, mixed: bool) {
    let source = seeded(&format!("{prefix}_src")).await;
    let target = fresh_db(&format!("{prefix}_dst")).await;
    let e = env(&target);
    let tags = source.collection::<Document>("tags");
    let guild = docs(&source, "tags", doc! {}).await[0]
        .get_str("guildId")
        .unwrap()
        .to_string();
    let tag = |id: Bson, name: &str| doc! { "_id": id, "guildId": &guild, "name": name, "content": "c", "authorId": "1", "uses": 0 };
    let lowest = Bson::ObjectId(ObjectId::parse_str("000000000000000000000001").unwrap());
    let highest = Bson::ObjectId(ObjectId::parse_str("ffffffffffffffffffffff01").unwrap());
    tags.insert_many([
        tag(lowest.clone(), "lowest"),
        tag(highest.clone(), "highest"),
        tag(Bson::from("legacy-a"), "legacy-a"),
        tag(Bson::from("legacy-b"), "legacy-b"),
        tag(Bson::from("legacy-keep"), "legacy-keep"),
    ])
    .await
    .unwrap();
    let mut o = opts(&source);
    o.batch_size = 3;
    assert!(run(&e, o.clone()).await.success());

    let all = docs(&source, "tags", doc! { "_id": { "$type": "objectId" } }).await;
    let middle = all[all.len() / 2].get("_id").unwrap().clone();
    let mut deleted = vec![
        lowest,
        highest,
        middle,
        Bson::from("legacy-a"),
        Bson::from("legacy-b"),
    ];
    if !mixed {
        deleted.push(Bson::from("legacy-keep"));
    }
    tags.delete_many(doc! { "_id": { "$in": deleted.clone() } })
        .await
        .unwrap();
    // The new bot made a tag of its own meanwhile: not the source's, never "gone".
    let own = ObjectId::new();
    target
        .collection::<Document>("tags")
        .insert_one(tag(Bson::ObjectId(own), "made-in-the-target"))
        .await
        .unwrap();

    o.sync = true;
    let mut dry = o.clone();
    dry.dry_run = true;
    let plan = plan_of(&e, dry).await;
    let planned: u64 = plan
        .steps
        .iter()
        .flat_map(|s| &s.collections)
        .map(|c| c.gone)
        .sum();
    for _ in 0..2 {
        let sync = run(&e, o.clone()).await;
        assert!(sync.success(), "{:?} {:?}", sync.message, sync.verification);
        assert_eq!(
            sum(&sync, |c| c.gone),
            deleted.len() as u64,
            "{:?}",
            sync.skips
        );
        assert_eq!(planned, deleted.len() as u64, "the plan says the same");
        let listed: Vec<_> = sync
            .skips
            .iter()
            .filter(|s| s.reason.contains("gone from the source"))
            .map(|s| s.source_id.clone())
            .collect();
        assert_eq!(listed.len(), deleted.len(), "each listed once: {listed:?}");
        assert!(
            !listed.iter().any(|l| l.contains(&own.to_hex())),
            "the target's own tag is not gone"
        );
        for id in &deleted {
            assert_eq!(
                docs(&target, "tags", doc! { "_id": id.clone() })
                    .await
                    .len(),
                1,
                "{id} is kept"
            );
        }
    }
}

#[tokio::test]
async fn a_sync_finds_gone_documents_wherever_their_ids_fall() {
    gone_anywhere("gonew", false).await;
}

#[tokio::test]
async fn a_sync_finds_gone_documents_among_ids_of_mixed_types() {
    gone_anywhere("gonem", true).await;
}

/// Waits (at most 30 s) until `check` holds.
async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "never: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Waits until the newest run of `store` follows its source.
async fn until_following(store: &heimdall_host::migration::runs::RunStore) {
    until("the run follows", || async {
        store
            .list(1)
            .await
            .unwrap()
            .first()
            .is_some_and(|r| r.following)
    })
    .await;
}

#[tokio::test]
async fn follow_applies_the_sources_writes_as_they_come_until_stopped() {
    let source = seeded("follow_src").await;
    let target = fresh_db("follow_dst").await;
    let e = env(&target);
    let tags = source.collection::<Document>("tags");
    let guild = docs(&source, "tags", doc! {}).await[0]
        .get_str("guildId")
        .unwrap()
        .to_string();
    let tag = move |name: String| doc! { "_id": ObjectId::new(), "guildId": guild.clone(), "name": name, "content": "c", "authorId": "1", "uses": 0 };

    // The old bot keeps writing while the copy runs.
    let writer = {
        let (tags, tag) = (tags.clone(), tag.clone());
        tokio::spawn(async move {
            for i in 0..40 {
                tags.insert_one(tag(format!("during-{i}"))).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(15)).await;
            }
        })
    };
    let mut o = opts(&source);
    o.follow = true;
    o.batch_size = 100;
    let cancel = CancellationToken::new();
    let recorder = Arc::new(Recorder::default());
    let running = {
        let (e, cancel, recorder) = (e.clone(), cancel.clone(), recorder.clone());
        tokio::spawn(async move { clone::start(&e, o, recorder, cancel).await })
    };
    let store = heimdall_host::migration::runs::RunStore::new(&target);
    until_following(&store).await;
    writer.await.unwrap();

    // Live changes: an edit, a deletion, a new tag.
    let all = docs(&source, "tags", doc! {}).await;
    let (edited, deleted) = (
        all[0].get("_id").unwrap().clone(),
        all[1].get("_id").unwrap().clone(),
    );
    tags.update_one(
        doc! { "_id": edited.clone() },
        doc! { "$set": { "content": "edited live" } },
    )
    .await
    .unwrap();
    tags.delete_one(doc! { "_id": deleted.clone() })
        .await
        .unwrap();
    tags.insert_one(tag("after-the-copy".into())).await.unwrap();
    let target_tags = target.collection::<Document>("tags");
    until("the changes arrive", || async {
        let e = target_tags
            .find_one(doc! { "_id": edited.clone() })
            .await
            .unwrap();
        let n = target_tags
            .count_documents(doc! { "name": "after-the-copy" })
            .await
            .unwrap();
        e.is_some_and(|d| d.get_str("content") == Ok("edited live")) && n == 1
    })
    .await;
    until("lag 0 is reported", || async {
        recorder
            .0
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|e| e.kind == Some(heimdall_host::migration::EventKind::Following))
            .is_some_and(|e| e.lag_ms == Some(0) && e.record_index.unwrap_or(0) >= 3)
    })
    .await;

    // The cut-over: stop. A last catch-up, then the verification; the run completes.
    cancel.cancel();
    let record = match running.await.unwrap().unwrap() {
        Outcome::Run(r) => *r,
        Outcome::Plan(_) => unreachable!(),
    };
    assert_eq!(
        record.status,
        heimdall_host::migration::runs::RunStatus::Completed,
        "{:?}",
        record.message
    );
    assert!(
        record.verification.as_ref().unwrap().ok,
        "{:?}",
        record.verification
    );
    assert!(!record.following);
    assert!(record.follow_applied >= 3);
    for d in docs(&source, "tags", doc! {}).await {
        assert!(
            docs(
                &target,
                "tags",
                doc! { "_id": d.get("_id").unwrap().clone() }
            )
            .await
                == vec![d.clone()],
            "{d}"
        );
    }
    assert_eq!(
        docs(&target, "tags", doc! { "_id": deleted }).await.len(),
        1,
        "kept"
    );
    assert!(
        record.skips.iter().any(|s| s
            .reason
            .contains("deleted from the source while the run followed it")),
        "{:?}",
        record.skips
    );
    assert_eq!(sum(&record, |c| c.gone), 1);
}

#[tokio::test]
async fn a_follow_run_that_died_resumes_from_the_last_change_it_applied() {
    let source = seeded("followr_src").await;
    let target = fresh_db("followr_dst").await;
    let mut e = env(&target);
    e.lease_ttl = std::time::Duration::from_secs(2);
    let tags = source.collection::<Document>("tags");
    let guild = docs(&source, "tags", doc! {}).await[0]
        .get_str("guildId")
        .unwrap()
        .to_string();
    let mut o = opts(&source);
    o.follow = true;
    let running = {
        let e = e.clone();
        tokio::spawn(async move {
            clone::start(
                &e,
                o,
                Arc::new(Recorder::default()),
                CancellationToken::new(),
            )
            .await
        })
    };
    let store = heimdall_host::migration::runs::RunStore::new(&target);
    until_following(&store).await;
    let id = store.list(1).await.unwrap()[0].id.clone();
    // The process dies (its task is dropped mid-follow); the old bot writes meanwhile.
    running.abort();
    let _ = running.await;
    tags.insert_one(doc! { "_id": ObjectId::new(), "guildId": &guild, "name": "while-down", "content": "c", "authorId": "1", "uses": 0 })
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await; // the lease expires

    let cancel = CancellationToken::new();
    let resumed = {
        let (e, id, cancel) = (e.clone(), id.clone(), cancel.clone());
        tokio::spawn(async move {
            heimdall_host::migration::resume(&e, &id, None, Arc::new(Recorder::default()), cancel)
                .await
        })
    };
    let target_tags = target.collection::<Document>("tags");
    until("the change made while it was down arrives", || async {
        target_tags
            .count_documents(doc! { "name": "while-down" })
            .await
            .unwrap()
            == 1
    })
    .await;
    cancel.cancel();
    let record = resumed.await.unwrap().unwrap();
    assert_eq!(
        record.status,
        heimdall_host::migration::runs::RunStatus::Completed,
        "{:?}",
        record.message
    );
    assert_eq!(record.attempts, 2);
    assert!(
        record.verification.as_ref().unwrap().ok,
        "{:?}",
        record.verification
    );
}
