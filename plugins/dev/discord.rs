//! `/migrate`: the migration from Discord, owner-only, in an ephemeral reply that is edited
//! live while the run goes on.
//!
//! The commands are thin: each one reads its options and calls a plain async function here
//! that takes an [`InteractionReply`] (the interaction's id and token over serenity's
//! `Http`). Tests drive those functions against a local stand-in for Discord's REST API
//! through `HttpBuilder::proxy`.
//!
//! Discord lets a bot edit an interaction's reply for 15 minutes. Edits are spaced (one every
//! [`LiveOptions::edit_interval`] at most; the newest state wins), and shortly before the
//! token runs out the reply says where to follow the rest of the run (`/migrate status`, the
//! dashboard) and the result comes by direct message. The run itself does not depend on the
//! reply: it is a record, and its progress also goes to owners over the WebSocket gateway.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use poise::serenity_prelude as serenity;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::api::{CloneRequest, LegacyRequest, UndoRequest};
use super::OwnerSink;
use heimdall_host::context::{Context, Data, Error};
use heimdall_host::error::{display_for_user, UserError};
use heimdall_host::migration::clock;
use heimdall_host::migration::clone::{self, Plan};
use heimdall_host::migration::legacy::engine::{self as legacy, LegacyPlan};
use heimdall_host::migration::runs::{RunRecord, RunStatus, RunStore};
use heimdall_host::migration::undo::{self, UndoPlan};
use heimdall_host::migration::{
    Begun, EventKind, FanOut, MigrationMode, PendingRun, ProgressEvent, ProgressSink,
};

/// The language of texts with no user to speak to.
const DEFAULT: &str = heimdall_host::locales::DEFAULT_LOCALE;

/// Discord's limit on a message's content.
const MAX_CONTENT: usize = 2000;

/// How the live reply behaves.
#[derive(Clone)]
pub struct LiveOptions {
    /// Where the plan's Confirm and Cancel presses come from (`None`: no confirmation, the run
    /// starts at once).
    pub confirm: Option<Arc<dyn Confirmation>>,
    /// How long the plan's buttons wait for the owner (Discord: 60 s).
    pub confirm_timeout: Duration,
    /// The shortest time between two edits of the reply (Discord rate-limits edits).
    pub edit_interval: Duration,
    /// How long the interaction token can edit the reply (Discord: 15 minutes); the last
    /// edit is made a little before.
    pub token_lifetime: Duration,
}

impl std::fmt::Debug for LiveOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveOptions")
            .field("confirm", &self.confirm.is_some())
            .field("edit_interval", &self.edit_interval)
            .finish()
    }
}

impl Default for LiveOptions {
    fn default() -> Self {
        Self {
            confirm: None,
            confirm_timeout: Duration::from_secs(60),
            edit_interval: Duration::from_millis(1500),
            token_lifetime: Duration::from_secs(15 * 60),
        }
    }
}

/// A press of one of a plan's buttons.
#[derive(Debug, Clone)]
pub struct Press {
    /// Who pressed.
    pub user: u64,
    /// Confirm (`true`) or Cancel.
    pub confirm: bool,
    /// The press's own interaction (id and token), to answer it.
    pub interaction: (serenity::InteractionId, String),
}

/// Where a plan's button presses come from: Discord's component interactions, or a test.
#[async_trait::async_trait]
pub trait Confirmation: Send + Sync {
    /// The next press of this plan's buttons (`None`: no more will come).
    async fn next_press(&self) -> Option<Press>;
}

/// The custom ids of a plan's buttons.
pub fn button_ids(interaction: serenity::InteractionId) -> (String, String) {
    (
        format!("heimdall:confirm-migration:{interaction}"),
        format!("heimdall:cancel-migration:{interaction}"),
    )
}

/// Presses collected from Discord's gateway for one plan.
pub struct DiscordPresses {
    stream: tokio::sync::Mutex<futures::stream::BoxStream<'static, serenity::ComponentInteraction>>,
    confirm_id: String,
}

impl DiscordPresses {
    /// Collects the presses of the buttons of interaction `of`'s plan.
    pub fn new(shard: &serenity::ShardMessenger, of: serenity::InteractionId) -> Self {
        use futures::StreamExt;
        let (confirm_id, cancel_id) = button_ids(of);
        let ids = [confirm_id.clone(), cancel_id];
        let stream = serenity::ComponentInteractionCollector::new(shard)
            .filter(move |i| ids.contains(&i.data.custom_id))
            .stream()
            .boxed();
        Self {
            stream: tokio::sync::Mutex::new(stream),
            confirm_id,
        }
    }
}

#[async_trait::async_trait]
impl Confirmation for DiscordPresses {
    async fn next_press(&self) -> Option<Press> {
        use futures::StreamExt;
        let i = self.stream.lock().await.next().await?;
        Some(Press {
            user: i.user.id.get(),
            confirm: i.data.custom_id == self.confirm_id,
            interaction: (i.id, i.token.clone()),
        })
    }
}

/// What the owner decided about a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Start the run.
    Confirm,
    /// Do not.
    Cancel,
    /// Nobody decided in time.
    Expired,
}

/// Waits for the invoking owner's press; anyone else's is answered (privately) that only
/// the invoker decides, and waiting goes on. Every press is acknowledged.
async fn decide(
    reply: &InteractionReply,
    presses: &dyn Confirmation,
    invoker: u64,
    timeout: Duration,
) -> Decision {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let press = match tokio::time::timeout(left, presses.next_press()).await {
            Err(_) | Ok(None) => return Decision::Expired,
            Ok(Some(p)) => p,
        };
        let (id, token) = &press.interaction;
        if press.user != invoker {
            let text = t(&reply.locale, "migrate-confirm-not-yours", &[]);
            let answer = serenity::CreateInteractionResponse::Message(
                serenity::CreateInteractionResponseMessage::new()
                    .content(text)
                    .ephemeral(true),
            );
            if let Err(e) = reply
                .http
                .create_interaction_response(*id, token, &answer, vec![])
                .await
            {
                tracing::warn!(error = %e, "could not answer a press of another user");
            }
            continue;
        }
        // Acknowledged; the plan's message is edited right after.
        if let Err(e) = reply
            .http
            .create_interaction_response(
                *id,
                token,
                &serenity::CreateInteractionResponse::Acknowledge,
                vec![],
            )
            .await
        {
            tracing::warn!(error = %e, "could not acknowledge the press");
        }
        return if press.confirm {
            Decision::Confirm
        } else {
            Decision::Cancel
        };
    }
}

/// An interaction's reply: created once (ephemeral), then edited.
#[derive(Clone)]
pub struct InteractionReply {
    /// Discord's REST client (its application id must be set).
    pub http: Arc<serenity::Http>,
    /// The interaction.
    pub interaction_id: serenity::InteractionId,
    /// The interaction's token (valid for 15 minutes).
    pub token: String,
    /// When the interaction arrived.
    pub received: Instant,
    /// The invoking user's Discord language (`de`, `en-US`, ...): the replies speak it.
    pub locale: String,
}

impl InteractionReply {
    /// The reply of a slash command's interaction.
    pub fn of(ctx: &Context<'_>) -> Result<Self, Error> {
        match ctx {
            poise::Context::Application(a) => Ok(Self {
                http: ctx.serenity_context().http.clone(),
                interaction_id: a.interaction.id,
                token: a.interaction.token.clone(),
                received: Instant::now(),
                locale: a.interaction.locale.clone(),
            }),
            poise::Context::Prefix(_) => Err(UserError::bad_request(
                "slash_only",
                t(DEFAULT, "migrate-slash-only", &[]),
            )
            .into()),
        }
    }

    /// Creates the reply, visible to the invoker only.
    pub async fn open(&self, content: &str) -> serenity::Result<()> {
        let message = serenity::CreateInteractionResponseMessage::new()
            .content(fit(content))
            .ephemeral(true);
        self.http
            .create_interaction_response(
                self.interaction_id,
                &self.token,
                &serenity::CreateInteractionResponse::Message(message),
                vec![],
            )
            .await
    }

    /// Replaces the reply's content.
    pub async fn edit(&self, content: &str) -> serenity::Result<()> {
        self.http
            .edit_original_interaction_response(
                &self.token,
                &serenity::EditInteractionResponse::new().content(fit(content)),
                vec![],
            )
            .await
            .map(|_| ())
    }

    /// Replaces the reply's content and its buttons (none: they go away).
    pub async fn edit_with_buttons(
        &self,
        content: &str,
        buttons: Vec<serenity::CreateButton>,
    ) -> serenity::Result<()> {
        let rows = if buttons.is_empty() {
            Vec::new()
        } else {
            vec![serenity::CreateActionRow::Buttons(buttons)]
        };
        self.http
            .edit_original_interaction_response(
                &self.token,
                &serenity::EditInteractionResponse::new()
                    .content(fit(content))
                    .components(rows),
                vec![],
            )
            .await
            .map(|_| ())
    }

    /// Edits and logs a failure (a reply that cannot be edited must not stop the run).
    async fn edit_logged(&self, content: &str) {
        if let Err(e) = self.edit(content).await {
            tracing::warn!(error = %e, "could not edit the migration reply");
        }
    }
}

/// Cuts a text to Discord's limit.
fn fit(s: &str) -> String {
    if s.chars().count() <= MAX_CONTENT {
        return s.to_string();
    }
    let mut out: String = s.chars().take(MAX_CONTENT - 1).collect();
    out.push('…');
    out
}

/// Answers a non-owner with the owner-only message; true when refused.
async fn refuse_non_owner(data: &Data, reply: &InteractionReply, user: u64) -> Result<bool, Error> {
    if data.owners.is_owner(user) {
        return Ok(false);
    }
    reply
        .open(&heimdall_host::locales::t_in(
            &reply.locale,
            "error-owner-only",
            &[],
        ))
        .await?;
    Ok(true)
}

/// `/migrate clone`: checks, then runs (or plans) an Instance Clone with a live reply.
pub async fn clone_command(
    data: &Data,
    reply: InteractionReply,
    user: u64,
    req: CloneRequest,
    live: LiveOptions,
) -> Result<(), Error> {
    if refuse_non_owner(data, &reply, user).await? {
        return Ok(());
    }
    let env = super::migration_env(data);
    let confirm = !req.dry_run;
    let opts = req.options(format!("discord:{user}"));
    start(
        data,
        reply,
        user,
        MigrationMode::Clone,
        live,
        confirm,
        render_clone_plan,
        move |dry_run, sink, cancel| {
            let (env, mut opts) = (env.clone(), opts.clone());
            opts.dry_run = dry_run;
            async move { clone::begin(&env, opts, sink, cancel).await }
        },
    )
    .await
}

/// `/migrate legacy`: checks, then runs (or plans) a Legacy Import with a live reply.
pub async fn legacy_command(
    data: &Data,
    reply: InteractionReply,
    user: u64,
    req: LegacyRequest,
    live: LiveOptions,
) -> Result<(), Error> {
    if refuse_non_owner(data, &reply, user).await? {
        return Ok(());
    }
    let env = super::migration_env(data);
    let confirm = !req.dry_run;
    let opts = req.options(format!("discord:{user}"));
    start(
        data,
        reply,
        user,
        MigrationMode::Legacy,
        live,
        confirm,
        render_legacy_plan,
        move |dry_run, sink, cancel| {
            let (env, mut opts) = (env.clone(), opts.clone());
            opts.dry_run = dry_run;
            async move { legacy::begin(&env, opts, sink, cancel).await }
        },
    )
    .await
}

/// `/migrate resume`: continues a cancelled, failed or crashed run with a live reply.
pub async fn resume_command(
    data: &Data,
    reply: InteractionReply,
    user: u64,
    run_id: &str,
    live: LiveOptions,
) -> Result<(), Error> {
    if refuse_non_owner(data, &reply, user).await? {
        return Ok(());
    }
    let lang = reply.locale.clone();
    let lang = lang.as_str();
    let Some(record) = RunStore::new(&data.db).get(run_id).await? else {
        reply
            .open(&t(lang, "migrate-unknown-run", &[("run", run_id)]))
            .await?;
        return Ok(());
    };
    let env = super::migration_env(data);
    let no_plan: fn(&str, &()) -> String = |_, _| String::new();
    start(
        data,
        reply,
        user,
        record.mode,
        live,
        false,
        no_plan,
        move |_, sink, cancel| {
            let (env, id) = (env.clone(), record.id.clone());
            async move {
                heimdall_host::migration::begin_resume(&env, &id, None, sink, cancel)
                    .await
                    .map(Begun::Run)
            }
        },
    )
    .await
}

/// `/migrate undo`: the undo's plan with Confirm and Cancel (unless a dry run), then the
/// undo with a live reply.
pub async fn undo_command(
    data: &Data,
    reply: InteractionReply,
    user: u64,
    run_id: &str,
    req: UndoRequest,
    live: LiveOptions,
) -> Result<(), Error> {
    if refuse_non_owner(data, &reply, user).await? {
        return Ok(());
    }
    let env = super::migration_env(data);
    let confirm = !req.dry_run;
    let opts = req.options(run_id.to_string(), format!("discord:{user}"));
    start(
        data,
        reply,
        user,
        MigrationMode::Undo,
        live,
        confirm,
        render_undo_plan,
        move |dry_run, sink, cancel| {
            let (env, mut opts) = (env.clone(), opts.clone());
            opts.dry_run = dry_run;
            async move { undo::begin(&env, opts, sink, cancel).await }
        },
    )
    .await
}

/// What the commands share after the owner check: the "checking" reply, the pre-flight
/// (`begin`, given whether to plan only, the progress sink and the cancel token), then the
/// plan, the refusal, or the live run. With `confirm` (and a source of presses), the plan
/// comes first with Confirm and Cancel buttons; nothing is written before Confirm.
#[allow(clippy::too_many_arguments)]
async fn start<P, Fut>(
    data: &Data,
    reply: InteractionReply,
    user: u64,
    mode: MigrationMode,
    live: LiveOptions,
    confirm: bool,
    render_plan: fn(&str, &P) -> String,
    begin: impl Fn(bool, Arc<dyn ProgressSink>, CancellationToken) -> Fut,
) -> Result<(), Error>
where
    Fut: std::future::Future<Output = anyhow::Result<Begun<P>>>,
{
    let lang = reply.locale.clone();
    let lang = lang.as_str();
    reply
        .open(&t(
            lang,
            "migrate-checking",
            &[("mode", &mode_name(lang, mode))],
        ))
        .await?;
    let cancel = data.shutdown.child_token();
    if let (true, Some(presses)) = (confirm, live.confirm.clone()) {
        let plan = match begin(
            true,
            Arc::new(heimdall_host::migration::NullSink),
            cancel.clone(),
        )
        .await
        {
            Err(e) => {
                reply.edit_logged(&refusal(lang, &e)).await;
                return Ok(());
            }
            Ok(Begun::Plan(p)) => render_plan(lang, &p),
            Ok(Begun::Run(_)) => anyhow::bail!("a dry run started a run"),
        };
        // The plan without its "run it without dry_run" footer, and the buttons.
        let head = plan.rsplit_once('\n').map_or(plan.as_str(), |(h, _)| h);
        let secs = live.confirm_timeout.as_secs().to_string();
        let text = format!(
            "{head}\n{}",
            t(lang, "migrate-plan-confirm", &[("seconds", &secs)])
        );
        let (confirm_id, cancel_id) = button_ids(reply.interaction_id);
        let buttons = vec![
            serenity::CreateButton::new(confirm_id)
                .label(t(lang, "migrate-button-confirm", &[]))
                .style(serenity::ButtonStyle::Success),
            serenity::CreateButton::new(cancel_id)
                .label(t(lang, "migrate-button-cancel", &[]))
                .style(serenity::ButtonStyle::Secondary),
        ];
        reply.edit_with_buttons(&text, buttons).await?;
        let answer = match decide(&reply, presses.as_ref(), user, live.confirm_timeout).await {
            Decision::Confirm => None,
            Decision::Cancel => Some("migrate-confirm-cancelled"),
            Decision::Expired => Some("migrate-confirm-expired"),
        };
        if let Some(key) = answer {
            reply
                .edit_with_buttons(&format!("{head}\n{}", t(lang, key, &[])), Vec::new())
                .await?;
            return Ok(());
        }
        reply
            .edit_with_buttons(
                &t(
                    lang,
                    "migrate-checking",
                    &[("mode", &mode_name(lang, mode))],
                ),
                Vec::new(),
            )
            .await?;
    }
    let live_sink = LiveSink::new(mode);
    // `confirm` is asked for exactly when the request is not a dry run.
    match begin(!confirm, live_sink.fan_out(data), cancel.clone()).await {
        Err(e) => reply.edit_logged(&refusal(lang, &e)).await,
        Ok(Begun::Plan(p)) => reply.edit_logged(&render_plan(lang, &p)).await,
        Ok(Begun::Run(run)) => run_live(data, reply, user, run, live_sink, cancel, live),
    }
    Ok(())
}

/// `/migrate status`: a run's record (the newest when `run_id` is not given), as text.
pub async fn status_text(data: &Data, lang: &str, run_id: Option<&str>) -> Result<String, Error> {
    let store = RunStore::new(&data.db);
    let record = match run_id {
        Some(id) => store.get(id).await?,
        None => store.list(1).await?.into_iter().next(),
    };
    Ok(match (record, run_id) {
        (Some(r), _) => {
            let active = store
                .active_lease()
                .await?
                .is_some_and(|l| l.get_str("runId") == Ok(r.id.as_str()));
            render_record(lang, &r, active)
        }
        (None, Some(id)) => t(lang, "migrate-unknown-run", &[("run", id)]),
        (None, None) => t(lang, "migrate-no-runs", &[]),
    })
}

/// `/migrate cancel`: asks a run to stop at its next batch boundary (in whichever process
/// runs it: the request is in the record).
pub async fn cancel_text(data: &Data, lang: &str, run_id: &str) -> Result<String, Error> {
    let store = RunStore::new(&data.db);
    if store.get(run_id).await?.is_none() {
        return Ok(t(lang, "migrate-unknown-run", &[("run", run_id)]));
    }
    match store.request_cancel(run_id).await {
        Ok(_) => Ok(t(lang, "migrate-cancel-requested", &[("run", run_id)])),
        Err(e) => Ok(refusal(lang, &e)),
    }
}

/// A refusal as the owner sees it: a user error as it is, anything else generically.
fn refusal(lang: &str, e: &anyhow::Error) -> String {
    t(lang, "migrate-refused", &[("reason", &display_for_user(e))])
}

/// Runs `run` in the background (owned by the bot's task tracker), editing the reply as
/// progress arrives and with the result at the end.
fn run_live(
    data: &Data,
    reply: InteractionReply,
    user: u64,
    run: PendingRun,
    sink: LiveSink,
    cancel: CancellationToken,
    live: LiveOptions,
) {
    let run_id = run.id.clone();
    sink.set_run(&run_id);
    let deadline = reply.received + live.token_lifetime.saturating_sub(live.edit_interval * 2);
    let editor_stop = CancellationToken::new();
    let editor = data.tasks.spawn(edit_loop(
        reply.clone(),
        sink.rx.clone(),
        editor_stop.clone(),
        cancel.clone(),
        deadline,
        live.edit_interval,
    ));
    let span = tracing::info_span!("migration", run = %run_id, via = "discord");
    data.tasks.spawn(
        async move {
            let result = run.run().await;
            let lang = reply.locale.as_str();
            editor_stop.cancel();
            let expired = editor.await.unwrap_or(true);
            let text = match &result {
                Ok(record) => {
                    tracing::info!(
                        status = record.status.as_str(),
                        imported = record.imported(),
                        "migration ended"
                    );
                    render_record(lang, record, false)
                }
                Err(e) => {
                    tracing::error!(error = ?e, "migration ended with an error");
                    refusal(lang, e)
                }
            };
            if expired {
                // The reply can no longer be edited: the result goes to the owner's DMs.
                direct_message(&reply.http, user, &text).await;
            } else {
                reply.edit_logged(&text).await;
            }
        }
        .instrument(span),
    );
}

/// Sends `text` to `user` in a direct message (logged when Discord refuses, e.g. closed DMs).
async fn direct_message(http: &serenity::Http, user: u64, text: &str) {
    let sent = async {
        let channel = serenity::UserId::new(user).create_dm_channel(http).await?;
        channel
            .id
            .send_message(http, serenity::CreateMessage::new().content(fit(text)))
            .await
    }
    .await;
    if let Err(e) = sent {
        tracing::warn!(error = %e, user, "could not send the migration result by direct message");
    }
}

/// Edits the reply with the newest progress, at most once per `interval`, until `stop`;
/// near `deadline` it says where to follow the run and stops editing. Returns whether the
/// token is spent (no final edit then).
async fn edit_loop(
    reply: InteractionReply,
    mut rx: watch::Receiver<Snapshot>,
    stop: CancellationToken,
    shutdown: CancellationToken,
    deadline: Instant,
    interval: Duration,
) -> bool {
    let mut last_edit: Option<Instant> = None;
    let lang = reply.locale.clone();
    let lang = lang.as_str();
    loop {
        let until_deadline = deadline.saturating_duration_since(Instant::now());
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(until_deadline) => {
                let run = rx.borrow().run_id.clone();
                reply.edit_logged(&t(lang, "migrate-live-ends", &[("run", &run)])).await;
                return true;
            }
            changed = rx.changed() => {
                if changed.is_err() {
                    break;
                }
            }
        }
        if let Some(at) = last_edit {
            let wait = interval.saturating_sub(at.elapsed());
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        if Instant::now() >= deadline {
            continue;
        }
        let text = render_progress(lang, &rx.borrow_and_update());
        reply.edit_logged(&text).await;
        last_edit = Some(Instant::now());
    }
    Instant::now() >= deadline
}

/// The live state the reply shows.
#[derive(Debug, Clone)]
struct Snapshot {
    run_id: String,
    mode: MigrationMode,
    completed: u16,
    total: u16,
    /// Steps in progress: step → (label, records done, records in the step).
    active: BTreeMap<u16, (String, u64, u64)>,
    /// Each step's pace, when known.
    pace: BTreeMap<u16, heimdall_host::migration::Pace>,
    /// The step that has made no progress for a while, until it moves again.
    stalled: Option<(u16, String)>,
    /// Following the source: the lag (ms) and the changes applied.
    following: Option<(u64, u64)>,
    /// The whole run's pace.
    run_pace: Option<heimdall_host::migration::Pace>,
}

/// A progress sink feeding the live reply (and, through [`LiveSink::fan_out`], the owners'
/// WebSocket stream too).
#[derive(Clone)]
struct LiveSink {
    tx: Arc<watch::Sender<Snapshot>>,
    rx: watch::Receiver<Snapshot>,
}

impl LiveSink {
    fn new(mode: MigrationMode) -> Self {
        let (tx, rx) = watch::channel(Snapshot {
            run_id: String::new(),
            mode,
            completed: 0,
            total: 0,
            active: BTreeMap::new(),
            pace: BTreeMap::new(),
            stalled: None,
            following: None,
            run_pace: None,
        });
        Self {
            tx: Arc::new(tx),
            rx,
        }
    }

    fn set_run(&self, id: &str) {
        self.tx.send_modify(|s| s.run_id = id.to_string());
    }

    /// This sink and the owners' gateway stream.
    fn fan_out(&self, data: &Data) -> Arc<dyn ProgressSink> {
        Arc::new(FanOut(vec![
            Arc::new(self.clone()),
            Arc::new(OwnerSink(data.ws.clone())),
        ]))
    }
}

impl ProgressSink for LiveSink {
    fn emit(&self, e: &ProgressEvent) {
        self.tx.send_modify(|s| {
            s.run_id.clone_from(&e.run_id);
            s.completed = e.completed;
            s.total = e.total;
            s.stalled = None;
            match e.kind() {
                EventKind::Stalled => {
                    let label = match &e.collection {
                        Some(c) => format!("{} ({c})", e.label),
                        None => e.label.clone(),
                    };
                    s.stalled = Some((e.step, label));
                }
                EventKind::Following => {
                    s.following = Some((e.lag_ms.unwrap_or(0), e.record_index.unwrap_or(0)));
                    s.completed = e.completed;
                    s.total = e.total;
                }
                EventKind::StepStart => {
                    s.active.insert(e.step, (e.label.clone(), 0, 0));
                }
                EventKind::StepProgress => {
                    if e.run_pace.is_some() {
                        s.run_pace = e.run_pace;
                    }
                    let entry = s.active.entry(e.step).or_insert((e.label.clone(), 0, 0));
                    entry.1 = e.record_index.unwrap_or(entry.1);
                    entry.2 = e.record_total.unwrap_or(entry.2);
                    if let Some(p) = e.pace {
                        s.pace.insert(e.step, p);
                    }
                }
                EventKind::StepComplete => {
                    s.active.remove(&e.step);
                    s.pace.remove(&e.step);
                }
                _ => {}
            }
        });
    }
}

fn mode_name(lang: &str, mode: MigrationMode) -> String {
    match mode {
        MigrationMode::Clone => t(lang, "migrate-mode-clone", &[]),
        MigrationMode::Legacy => t(lang, "migrate-mode-legacy", &[]),
        MigrationMode::Undo => t(lang, "migrate-mode-undo", &[]),
    }
}

/// A count with thousands separators (`553,565`).
pub fn num(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn bar(done: u64, total: u64) -> String {
    const WIDTH: u64 = 12;
    let filled = (done.min(total) * WIDTH)
        .checked_div(total)
        .unwrap_or(WIDTH);
    format!(
        "{}{}",
        "▰".repeat(filled as usize),
        "▱".repeat((WIDTH - filled) as usize)
    )
}

fn render_progress(lang: &str, s: &Snapshot) -> String {
    let mode = mode_name(lang, s.mode);
    if s.total == 0 {
        return t(
            lang,
            "migrate-progress-starting",
            &[("mode", &mode), ("run", &s.run_id)],
        );
    }
    let mut out = t(
        lang,
        "migrate-progress-header",
        &[
            ("mode", &mode),
            ("run", &s.run_id),
            ("completed", &s.completed.to_string()),
            ("total", &s.total.to_string()),
        ],
    );
    if let Some(p) = s.run_pace.filter(|p| p.per_second > 0.0) {
        out.push_str(&t(
            lang,
            "migrate-progress-run-pace",
            &[
                ("elapsed", &clock(p.elapsed_ms)),
                ("rate", &num(p.per_second.round() as u64)),
                ("eta", &p.eta_ms.map(clock).unwrap_or_else(|| "–".into())),
            ],
        ));
    }
    out.push('\n');
    out.push_str(&bar(s.completed.into(), s.total.into()));
    for (step, (label, done, total)) in s.active.iter().take(4) {
        out.push('\n');
        out.push_str(&t(
            lang,
            "migrate-progress-step",
            &[
                ("step", &step.to_string()),
                ("label", label),
                ("bar", &bar(*done, *total)),
                ("done", &num(*done)),
                ("total", &num(*total)),
            ],
        ));
        if let Some(p) = s.pace.get(step).filter(|p| p.per_second > 0.0) {
            out.push_str(&t(
                lang,
                "migrate-progress-pace",
                &[
                    ("rate", &num(p.per_second.round() as u64)),
                    ("eta", &clock(p.eta_ms.unwrap_or(0))),
                ],
            ));
        }
    }
    if let Some((lag, applied)) = s.following {
        out.push('\n');
        out.push_str(&t(
            lang,
            "migrate-progress-following",
            &[
                ("lag", &format!("{}.{}", lag / 1000, lag % 1000 / 100)),
                ("applied", &num(applied)),
                ("run", &s.run_id),
            ],
        ));
    }
    if let Some((step, label)) = &s.stalled {
        out.push('\n');
        out.push_str(&t(
            lang,
            "migrate-progress-stalled",
            &[("step", &step.to_string()), ("label", label)],
        ));
    }
    out.push('\n');
    out.push_str(&t(lang, "migrate-progress-footer", &[("run", &s.run_id)]));
    out
}

/// A run record as the reply shows it: outcome, counts, verification, where to read more.
fn render_record(lang: &str, r: &RunRecord, active: bool) -> String {
    let key = match r.status {
        RunStatus::Completed if r.failed() == 0 => "migrate-result-completed",
        RunStatus::Completed => "migrate-result-completed-with-failures",
        RunStatus::Failed => "migrate-result-failed",
        RunStatus::Cancelled => "migrate-result-cancelled",
        RunStatus::Running if active => "migrate-result-running",
        RunStatus::Running => "migrate-result-interrupted",
        RunStatus::Pending => "migrate-result-pending",
    };
    let mut out = t(
        lang,
        key,
        &[("mode", &mode_name(lang, r.mode)), ("run", &r.id)],
    );
    out.push('\n');
    if r.mode == MigrationMode::Undo {
        let sum = |f: fn(&heimdall_host::migration::runs::CollectionResult) -> u64| {
            r.steps.iter().map(|s| s.sum(f)).sum::<u64>()
        };
        out.push_str(&t(
            lang,
            "migrate-result-undo-counts",
            &[
                ("removed", &num(sum(|c| c.removed))),
                ("restored", &num(sum(|c| c.restored))),
                ("already", &num(sum(|c| c.skipped))),
                ("conflicts", &num(sum(|c| c.conflicts))),
            ],
        ));
        for k in r.skips.iter().take(5) {
            out.push('\n');
            out.push_str(&t(
                lang,
                "migrate-result-conflict",
                &[
                    ("collection", &k.collection),
                    ("id", &k.source_id),
                    ("reason", &k.reason),
                ],
            ));
        }
    } else {
        out.push_str(&t(
            lang,
            "migrate-result-counts",
            &[
                ("imported", &num(r.imported())),
                ("skipped", &num(r.skipped())),
                ("failed", &num(r.failed())),
            ],
        ));
        if r.options.sync {
            let sum = |f: fn(&heimdall_host::migration::runs::CollectionResult) -> u64| {
                r.steps.iter().map(|s| s.sum(f)).sum::<u64>()
            };
            out.push('\n');
            out.push_str(&t(
                lang,
                "migrate-result-sync-counts",
                &[
                    ("inserted", &num(sum(|c| c.inserted))),
                    ("updated", &num(sum(|c| c.updated))),
                    ("unchanged", &num(sum(|c| c.skipped))),
                    ("gone", &num(sum(|c| c.gone))),
                ],
            ));
        }
    }
    let done = r
        .steps
        .iter()
        .filter(|s| s.status == heimdall_host::migration::runs::StepStatus::Completed)
        .count();
    out.push('\n');
    out.push_str(&t(
        lang,
        "migrate-result-steps",
        &[
            ("done", &done.to_string()),
            ("total", &r.steps.len().to_string()),
        ],
    ));
    if let Some(v) = &r.verification {
        out.push('\n');
        let (checked, matching): (u64, u64) = v
            .collections
            .iter()
            .fold((0, 0), |(a, b), c| (a + c.source, b + c.matching));
        out.push_str(&t(
            lang,
            match (v.undo, v.ok) {
                (true, true) => "migrate-result-undo-verified",
                (true, false) => "migrate-result-undo-not-verified",
                (false, true) => "migrate-result-verified",
                (false, false) => "migrate-result-not-verified",
            },
            &[("checked", &num(checked)), ("matching", &num(matching))],
        ));
    }
    if let Some(m) = &r.message {
        out.push('\n');
        out.push_str(&t(lang, "migrate-result-message", &[("message", m)]));
    }
    for e in r.errors.iter().take(5) {
        out.push('\n');
        out.push_str(&t(
            lang,
            "migrate-result-error",
            &[
                ("collection", &e.collection),
                ("id", &e.source_id),
                ("reason", &e.reason),
            ],
        ));
    }
    if r.error_count > 5 {
        out.push('\n');
        out.push_str(&t(
            lang,
            "migrate-result-more-errors",
            &[("count", &num(r.error_count - 5))],
        ));
    }
    if matches!(r.status, RunStatus::Cancelled | RunStatus::Failed)
        || (r.status == RunStatus::Running && !active)
    {
        out.push('\n');
        out.push_str(&t(lang, "migrate-result-resume-hint", &[("run", &r.id)]));
    }
    out
}

fn render_clone_plan(lang: &str, p: &Plan) -> String {
    let mut out = t(
        lang,
        "migrate-plan-header",
        &[
            ("mode", &mode_name(lang, MigrationMode::Clone)),
            ("source", &p.source),
        ],
    );
    let (mut insert, mut skip, mut remap, mut invalid, mut dangling) = (0, 0, 0, 0, 0);
    let (mut update, mut gone) = (0, 0);
    for s in &p.steps {
        for c in &s.collections {
            insert += c.to_insert + c.to_overwrite;
            skip += c.to_skip;
            remap += c.to_remap;
            invalid += c.invalid;
            dangling += c.dangling;
            update += c.to_update;
            gone += c.gone;
        }
    }
    out.push('\n');
    out.push_str(&t(
        lang,
        "migrate-plan-clone-counts",
        &[
            ("insert", &num(insert)),
            ("skip", &num(skip)),
            ("remap", &num(remap)),
            ("invalid", &num(invalid)),
            ("dangling", &num(dangling)),
        ],
    ));
    if p.sync {
        out.push('\n');
        out.push_str(&t(
            lang,
            "migrate-plan-sync-counts",
            &[("update", &num(update)), ("gone", &num(gone))],
        ));
    }
    for w in &p.warnings {
        out.push('\n');
        out.push_str(&t(lang, "migrate-plan-warning", &[("warning", w)]));
    }
    out.push('\n');
    out.push_str(&t(lang, "migrate-plan-footer", &[]));
    out
}

fn render_undo_plan(lang: &str, p: &UndoPlan) -> String {
    let mut out = t(
        lang,
        "migrate-plan-undo-header",
        &[
            ("run", &p.undoes),
            ("mode", &mode_name(lang, p.undoes_mode)),
        ],
    );
    let sum = |f: fn(&heimdall_host::migration::undo::UndoCollectionPlan) -> u64| {
        p.collections.iter().map(f).sum::<u64>()
    };
    out.push('\n');
    out.push_str(&t(
        lang,
        "migrate-plan-undo-counts",
        &[
            ("remove", &num(sum(|c| c.to_remove))),
            ("restore", &num(sum(|c| c.to_restore))),
            ("already", &num(sum(|c| c.already_undone))),
            ("conflicts", &num(p.conflict_count)),
        ],
    ));
    for k in p.conflicts.iter().take(5) {
        out.push('\n');
        out.push_str(&t(
            lang,
            "migrate-result-conflict",
            &[
                ("collection", &k.collection),
                ("id", &k.source_id),
                ("reason", &k.reason),
            ],
        ));
    }
    if p.conflict_count > 0 {
        out.push('\n');
        out.push_str(&t(
            lang,
            if p.force {
                "migrate-plan-undo-forced"
            } else {
                "migrate-plan-undo-kept"
            },
            &[],
        ));
    }
    out.push('\n');
    out.push_str(&t(lang, "migrate-plan-footer", &[]));
    out
}

fn render_legacy_plan(lang: &str, p: &LegacyPlan) -> String {
    let mut out = t(
        lang,
        "migrate-plan-header",
        &[
            ("mode", &mode_name(lang, MigrationMode::Legacy)),
            ("source", &p.source),
        ],
    );
    for s in &p.steps {
        out.push('\n');
        out.push_str(&t(
            lang,
            "migrate-plan-legacy-step",
            &[
                ("step", &s.order.to_string()),
                ("label", &s.label),
                ("found", &num(s.found)),
                ("import", &num(s.to_import)),
                ("skip", &num(s.to_skip)),
                ("errors", &num(s.errors)),
            ],
        ));
    }
    out.push('\n');
    out.push_str(&t(lang, "migrate-plan-footer", &[]));
    out
}

/// Migration: copy another Heimdall instance or import the old bot's data (owners only).
#[poise::command(
    slash_command,
    check = "heimdall_host::discord::owner_only",
    ephemeral,
    subcommands("clone", "legacy", "status", "cancel", "resume", "undo"),
    subcommand_required,
    name_localized("de", "migration"),
    description_localized(
        "de",
        "Eine Heimdall-Instanz kopieren oder die Daten des alten Bots importieren (nur Besitzer)"
    )
)]
pub async fn migrate(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// Copy another Heimdall instance's data into this one, with live progress.
#[allow(clippy::too_many_arguments)] // one per slash-command option
#[poise::command(
    slash_command,
    check = "heimdall_host::discord::owner_only",
    ephemeral,
    name_localized("de", "klonen"),
    description_localized(
        "de",
        "Die Daten einer anderen Heimdall-Instanz hierher kopieren, mit Live-Fortschritt"
    )
)]
pub async fn clone(
    ctx: Context<'_>,
    #[description = "The other instance's MongoDB connection string"]
    #[name_localized("de", "quelle")]
    #[description_localized("de", "Die MongoDB-Verbindungszeichenfolge der anderen Instanz")]
    source: String,
    #[description = "Its database (default: the one named in the connection string)"]
    #[name_localized("de", "quell_db")]
    #[description_localized("de", "Ihre Datenbank (sonst die aus der Verbindungszeichenfolge)")]
    source_db: Option<String>,
    #[description = "Copy only this guild (its id)"]
    #[name_localized("de", "server")]
    #[description_localized("de", "Nur diesen Server kopieren (seine ID)")]
    guild: Option<String>,
    #[description = "Only show the plan; write nothing"]
    #[name_localized("de", "probelauf")]
    #[description_localized("de", "Nur den Plan zeigen; nichts schreiben")]
    dry_run: Option<bool>,
    #[description = "Replace documents that already exist here"]
    #[name_localized("de", "ueberschreiben")]
    #[description_localized("de", "Hier schon vorhandene Dokumente ersetzen")]
    overwrite: Option<bool>,
    #[description = "Catch up after an earlier clone: copy what is new, update what changed"]
    #[name_localized("de", "abgleichen")]
    #[description_localized(
        "de",
        "Nach einem früheren Klon aufholen: Neues kopieren, Geändertes aktualisieren"
    )]
    sync: Option<bool>,
    #[description = "Then keep applying the source's changes, with the lag, until cancelled"]
    #[name_localized("de", "folgen")]
    #[description_localized(
        "de",
        "Danach die Änderungen der Quelle laufend übernehmen, mit Verzögerung, bis zum Abbruch"
    )]
    follow: Option<bool>,
    #[description = "Copy even though the encryption keys differ"]
    #[name_localized("de", "schluessel_egal")]
    #[description_localized("de", "Auch kopieren, wenn die Schlüssel verschieden sind")]
    allow_key_mismatch: Option<bool>,
) -> Result<(), Error> {
    let args = CloneRequest {
        source,
        source_db,
        guild_id: guild,
        dry_run: dry_run.unwrap_or(false),
        overwrite: overwrite.unwrap_or(false),
        sync: sync.unwrap_or(false),
        follow: follow.unwrap_or(false),
        allow_key_mismatch: allow_key_mismatch.unwrap_or(false),
    };
    let reply = InteractionReply::of(&ctx)?;
    let live = confirmed_live(&ctx, &reply);
    clone_command(ctx.data(), reply, ctx.author().id.get(), args, live).await
}

/// Import the old bot's database into Heimdall, with live progress.
#[poise::command(
    slash_command,
    check = "heimdall_host::discord::owner_only",
    ephemeral,
    name_localized("de", "altdaten"),
    description_localized(
        "de",
        "Die Datenbank des alten Bots in Heimdall importieren, mit Live-Fortschritt"
    )
)]
pub async fn legacy(
    ctx: Context<'_>,
    #[description = "The old bot's MongoDB connection string"]
    #[name_localized("de", "quelle")]
    #[description_localized("de", "Die MongoDB-Verbindungszeichenfolge des alten Bots")]
    source: String,
    #[description = "Its database (default: the one named in the connection string)"]
    #[name_localized("de", "quell_db")]
    #[description_localized("de", "Seine Datenbank (sonst die aus der Verbindungszeichenfolge)")]
    source_db: Option<String>,
    #[description = "Import only this guild (its id)"]
    #[name_localized("de", "server")]
    #[description_localized("de", "Nur diesen Server importieren (seine ID)")]
    guild: Option<String>,
    #[description = "The old bot's modmail collection (default: modmail)"]
    #[name_localized("de", "modmail_sammlung")]
    #[description_localized("de", "Die Modmail-Sammlung des alten Bots (sonst modmail)")]
    modmail_collection: Option<String>,
    #[description = "Only show the plan; write nothing"]
    #[name_localized("de", "probelauf")]
    #[description_localized("de", "Nur den Plan zeigen; nichts schreiben")]
    dry_run: Option<bool>,
) -> Result<(), Error> {
    let args = LegacyRequest {
        source,
        source_db,
        guild_id: guild,
        modmail_collection,
        dry_run: dry_run.unwrap_or(false),
    };
    let reply = InteractionReply::of(&ctx)?;
    let live = confirmed_live(&ctx, &reply);
    legacy_command(ctx.data(), reply, ctx.author().id.get(), args, live).await
}

/// Show a migration run: the newest, or the one named.
#[poise::command(
    slash_command,
    check = "heimdall_host::discord::owner_only",
    ephemeral,
    name_localized("de", "status"),
    description_localized("de", "Einen Migrationslauf zeigen: den neuesten oder den genannten")
)]
pub async fn status(
    ctx: Context<'_>,
    #[description = "The run's id (default: the newest run)"]
    #[name_localized("de", "lauf")]
    #[description_localized("de", "Die ID des Laufs (sonst der neueste)")]
    run: Option<String>,
) -> Result<(), Error> {
    let text = status_text(ctx.data(), ctx.locale().unwrap_or(DEFAULT), run.as_deref()).await?;
    ctx.send(
        poise::CreateReply::default()
            .content(fit(&text))
            .ephemeral(true),
    )
    .await?;
    Ok(())
}

/// Stop a running migration at its next batch (it can be resumed).
#[poise::command(
    slash_command,
    check = "heimdall_host::discord::owner_only",
    ephemeral,
    name_localized("de", "abbrechen"),
    description_localized(
        "de",
        "Eine laufende Migration beim nächsten Stapel anhalten (sie lässt sich fortsetzen)"
    )
)]
pub async fn cancel(
    ctx: Context<'_>,
    #[description = "The run's id"]
    #[name_localized("de", "lauf")]
    #[description_localized("de", "Die ID des Laufs")]
    run: String,
) -> Result<(), Error> {
    let text = cancel_text(ctx.data(), ctx.locale().unwrap_or(DEFAULT), &run).await?;
    ctx.send(
        poise::CreateReply::default()
            .content(fit(&text))
            .ephemeral(true),
    )
    .await?;
    Ok(())
}

/// Continue a cancelled, failed or interrupted migration from where it stopped.
#[poise::command(
    slash_command,
    check = "heimdall_host::discord::owner_only",
    ephemeral,
    name_localized("de", "fortsetzen"),
    description_localized(
        "de",
        "Eine abgebrochene, fehlgeschlagene oder unterbrochene Migration fortsetzen"
    )
)]
pub async fn resume(
    ctx: Context<'_>,
    #[description = "The run's id"]
    #[name_localized("de", "lauf")]
    #[description_localized("de", "Die ID des Laufs")]
    run: String,
) -> Result<(), Error> {
    let reply = InteractionReply::of(&ctx)?;
    resume_command(
        ctx.data(),
        reply,
        ctx.author().id.get(),
        &run,
        LiveOptions::default(),
    )
    .await
}

/// Undo a migration run: remove what it inserted, put back what it replaced.
#[poise::command(
    slash_command,
    check = "heimdall_host::discord::owner_only",
    ephemeral,
    name_localized("de", "rueckgaengig"),
    description_localized(
        "de",
        "Einen Migrationslauf rückgängig machen: Eingefügtes entfernen, Ersetztes zurückholen"
    )
)]
pub async fn undo(
    ctx: Context<'_>,
    #[description = "The id of the run to undo"]
    #[name_localized("de", "lauf")]
    #[description_localized("de", "Die ID des Laufs, der rückgängig gemacht wird")]
    run: String,
    #[description = "Undo documents changed since the run too (their changes are lost)"]
    #[name_localized("de", "erzwingen")]
    #[description_localized(
        "de",
        "Auch seither geänderte Dokumente zurücksetzen (die Änderungen gehen verloren)"
    )]
    force: Option<bool>,
    #[description = "Only show the plan; write nothing"]
    #[name_localized("de", "probelauf")]
    #[description_localized("de", "Nur den Plan zeigen; nichts schreiben")]
    dry_run: Option<bool>,
) -> Result<(), Error> {
    let req = UndoRequest {
        dry_run: dry_run.unwrap_or(false),
        force: force.unwrap_or(false),
    };
    let reply = InteractionReply::of(&ctx)?;
    let live = confirmed_live(&ctx, &reply);
    undo_command(ctx.data(), reply, ctx.author().id.get(), &run, req, live).await
}

/// The live options of a command whose plan waits for the invoker's Confirm, pressed in
/// Discord.
fn confirmed_live(ctx: &Context<'_>, reply: &InteractionReply) -> LiveOptions {
    LiveOptions {
        confirm: Some(Arc::new(DiscordPresses::new(
            &ctx.serenity_context().shard,
            reply.interaction_id,
        ))),
        ..LiveOptions::default()
    }
}

/// A dev-plugin text in `lang` (a Discord locale such as `de` or `en-US`).
fn t(lang: &str, key: &str, args: &[(&str, &str)]) -> String {
    super::STRINGS.t_in(lang, key, args)
}
