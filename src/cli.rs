//! The command line: `heimdall run`, `heimdall seed`, ...

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::seed::{self, SeedOptions};
use heimdall_host::config::Config;
use heimdall_host::crypto::EncryptionKey;
use heimdall_host::error::user_error;
use heimdall_host::startup::Application;

/// Heimdall: a Discord bot hosting plugins, with instance clone and legacy import.
#[derive(Debug, Parser)]
#[command(name = "heimdall", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the bot: HTTP API and dashboard, WebSocket gateway, and Discord when
    /// DISCORD_TOKEN is set. Without MONGODB_URI a local secantusd-rs is started with its
    /// data under ./data/. Configuration comes from the environment and heimdall.toml.
    Run,
    /// Write realistic sample data: a whole Heimdall instance (all 40 collections, several
    /// guilds of very different sizes) or, with --legacy, an old-bot database with every
    /// quirk of the legacy format. The same --seed gives the same data.
    Seed(SeedArgs),
    /// Migrate data into this bot: `clone` another Heimdall instance or import the old bot's
    /// database (`legacy`); `resume`, `cancel`, `undo`, `status` and `list` runs; `prune`
    /// old journals. Owner-only by nature: it needs the database.
    #[command(subcommand)]
    Migrate(MigrateCommand),
    /// Print the data model (docs/data-model.md) from the plugins' catalog: every
    /// collection, its key, guild scope, references and TTL, and the clone and legacy steps.
    Docs,
    /// Mint a session token (a JWT signed with AUTH_SECRET) for a Discord user: owners use it
    /// for the dashboard, the WebSocket gateway and the HTTP API.
    Token {
        /// The Discord user id the token stands for.
        #[arg(long)]
        user: String,
        /// How long it is valid: e.g. 30m, 1h, 7d.
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
}

/// Arguments of `heimdall seed`.
#[derive(Debug, Args)]
pub struct SeedArgs {
    /// MongoDB connection string of the server to write to.
    #[arg(long, env = "MONGODB_URI")]
    pub uri: String,
    /// Database to write (it must be empty unless --drop is given).
    #[arg(long)]
    pub db: String,
    /// Number of guilds.
    #[arg(long, default_value_t = 5)]
    pub guilds: u32,
    /// Size multiplier: 1.0 is a few thousand documents; 100 is several hundred thousand.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Random seed: the same seed writes the same data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// 64-hex-character key for the encrypted fields (default: ENCRYPTION_KEY).
    #[arg(long, env = "ENCRYPTION_KEY", hide_env_values = true)]
    pub encryption_key: Option<String>,
    /// Write an old-bot (legacy) database instead of a Heimdall instance.
    #[arg(long)]
    pub legacy: bool,
    /// With --legacy: the name of the modmail collection (default: the old bot's `modmail`).
    #[arg(long)]
    pub modmail_collection: Option<String>,
    /// ObjectIds at random times instead of in the order they are written, as a bot mints
    /// them: no collection is then stored in `_id` order (a harder layout to copy).
    #[arg(long)]
    pub scattered_ids: bool,
    /// Drop the database first if it holds data.
    #[arg(long)]
    pub drop: bool,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    heimdall_host::telemetry::init();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(dispatch(cli));
    if std::env::var("HEIMDALL_REPORT_PEAK_RSS").is_ok() {
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            if let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:")) {
                eprintln!("peak-rss {}", line.trim_start_matches("VmHWM:").trim());
            }
        }
    }
    match result {
        Ok(code) => code,
        Err(e) => {
            report(&e);
            ExitCode::FAILURE
        }
    }
}

/// Prints an error for the terminal: user and config errors as they are, others with cause.
pub fn report(e: &anyhow::Error) {
    if let Some(u) = user_error(e) {
        eprintln!("error: {}", u.message);
    } else if let Some(c) = e
        .chain()
        .find_map(|c| c.downcast_ref::<heimdall_host::config::ConfigError>())
    {
        eprintln!("error: {c}");
    } else {
        eprintln!("error: {e:#}");
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run => {
            let config = Config::from_env()?;
            let app = Application::build(config, crate::plugins::all()).await?;
            let shutdown = app.data().shutdown.clone();
            tokio::spawn(async move {
                let _ = tokio::signal::ctrl_c().await;
                shutdown.cancel();
            });
            app.run_until_stopped().await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate(cmd) => migrate(cmd).await,
        Command::Docs => {
            let reg = heimdall_host::plugin::Registry::new(crate::plugins::all())?;
            out(&heimdall_host::docs::data_model(&reg));
            Ok(ExitCode::SUCCESS)
        }
        Command::Token { user, ttl } => {
            let config = Config::from_env()?;
            let user = heimdall_host::config::parse_snowflake("--user", &user)?;
            let ttl = heimdall_base::settings::parse_duration(&ttl).map_err(|e| {
                heimdall_host::error::UserError::bad_request("invalid_ttl", format!("--ttl {e}"))
            })?;
            if ttl > config.auth_max_ttl {
                anyhow::bail!(heimdall_host::error::UserError::bad_request(
                    "invalid_ttl",
                    format!(
                        "--ttl {} is longer than a session may live ({}, AUTH_MAX_TTL); mint a shorter one, or raise AUTH_MAX_TTL",
                        heimdall_base::settings::describe_duration(ttl),
                        heimdall_base::settings::describe_duration(config.auth_max_ttl)
                    ),
                ));
            }
            let secret = config.auth_secret.as_ref().ok_or_else(|| {
                heimdall_host::error::UserError::bad_request("auth_secret_missing", "AUTH_SECRET is not set; set it (at least 32 characters) where the bot runs and here")
            })?;
            out(&format!(
                "{}\n",
                heimdall_host::auth::mint(secret.expose(), user, ttl)
            ));
            Ok(ExitCode::SUCCESS)
        }
        Command::Seed(args) => {
            let key = match &args.encryption_key {
                Some(k) => k.parse::<EncryptionKey>().map_err(|e| {
                    heimdall_host::error::UserError::bad_request(
                        "invalid_encryption_key",
                        format!("--encryption-key {e}"),
                    )
                })?,
                // The old bot's data holds no Heimdall secrets: no key is used.
                None if args.legacy => "00".repeat(32).parse::<EncryptionKey>()?,
                None => anyhow::bail!(heimdall_host::error::UserError::bad_request(
                    "encryption_key_missing",
                    "pass --encryption-key HEX (64 hex characters) or set ENCRYPTION_KEY (an instance's secrets are stored encrypted)",
                )),
            };
            let opts = SeedOptions {
                guilds: args.guilds,
                scale: args.scale,
                seed: args.seed,
                key,
                modmail_collection: args.modmail_collection.clone(),
                drop: args.drop,
                scattered_ids: args.scattered_ids,
            };
            let client =
                heimdall_host::db::connect(&args.uri, std::time::Duration::from_secs(10)).await?;
            heimdall_host::config::validate_db_name("--db", &args.db)?;
            let db = client.database(&args.db);
            let report = if args.legacy {
                seed::seed_legacy(&db, &opts).await
            } else {
                seed::seed_instance(&db, &opts).await
            };
            // See `migrate`: closed while the runtime runs.
            heimdall_host::db::close(client).await;
            println!("{}", report?.summary());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `heimdall migrate ...`.
#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Copy another Heimdall instance's database into this bot's database (MONGODB_URI,
    /// MONGODB_DB): all guilds or one, skipping what exists, verified at the end.
    Clone(CloneArgs),
    /// Import the old bot's database into this bot's database: settings, tags, suggestions
    /// with votes, modmail threads, moderation cases, pending reminders, reaction roles.
    Legacy(LegacyArgs),
    /// Continue a cancelled, failed or crashed run from its checkpoints.
    Resume(ResumeArgs),
    /// Undo a run from its journal: remove what it inserted, put back what it replaced.
    /// Documents changed since the run wrote them are kept and listed (conflicts).
    Undo(UndoArgs),
    /// Drop the journals of runs that ended before a given age (they can no longer be
    /// undone).
    Prune {
        /// How old a run must be, e.g. 30d, 12h, 90m (a bare number is days).
        #[arg(long, value_name = "AGE")]
        older_than: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ask a running migration to stop at its next batch.
    Cancel {
        /// The run id.
        run_id: String,
    },
    /// Show a run's record.
    Status {
        /// The run id.
        run_id: String,
        /// Print the record as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the latest runs.
    List,
}

/// Where the source connection string comes from. Its password should sit neither in `ps`
/// nor in shell history: prefer `--source-file`, `--source -` or `HEIMDALL_SOURCE_URI`.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// The source's connection string; `-` reads it from standard input. Also
    /// HEIMDALL_SOURCE_URI. On the command line its password shows in `ps` and shell
    /// history: prefer --source-file, `--source -` or the variable.
    #[arg(long, env = "HEIMDALL_SOURCE_URI", hide_env_values = true)]
    pub source: Option<String>,
    /// Read the source's connection string from this file (its first line).
    #[arg(long, value_name = "PATH", conflicts_with = "source")]
    pub source_file: Option<std::path::PathBuf>,
}

impl SourceArgs {
    /// The connection string, if one was given; an error says what is wrong with it.
    pub fn read(self) -> anyhow::Result<Option<String>> {
        let text = match (self.source, self.source_file) {
            (Some(s), _) if s.trim() == "-" => {
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .context("reading the source connection string from standard input")?;
                Some(("standard input", line))
            }
            (Some(s), _) => Some(("--source", s)),
            (None, Some(path)) => {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    if let Ok(m) = std::fs::metadata(&path) {
                        if m.permissions().mode() & 0o004 != 0 {
                            eprintln!(
                                "warning: {} is readable by every user of this machine; `chmod 600` it",
                                path.display()
                            );
                        }
                    }
                }
                let text = std::fs::read_to_string(&path).with_context(|| {
                    format!(
                        "reading the source connection string from {}",
                        path.display()
                    )
                })?;
                Some(("--source-file", text))
            }
            (None, None) => None,
        };
        match text {
            None => Ok(None),
            Some((from, text)) => {
                let uri = text.lines().next().unwrap_or_default().trim().to_string();
                if uri.is_empty() {
                    anyhow::bail!("{from} gave an empty source connection string");
                }
                Ok(Some(uri))
            }
        }
    }

    /// The connection string, which this command needs.
    pub fn require(self) -> anyhow::Result<String> {
        self.read()?.ok_or_else(|| {
            anyhow::anyhow!(
                "give the source connection string with --source-file PATH, --source - (standard input) or HEIMDALL_SOURCE_URI; `--source URI` works too, but leaves its password in ps and shell history"
            )
        })
    }
}

/// Arguments of `heimdall migrate clone`.
#[derive(Debug, Args)]
pub struct CloneArgs {
    /// The source instance's MongoDB.
    #[command(flatten)]
    pub source: SourceArgs,
    /// Source database (default: the one in --source, else `heimdall`).
    #[arg(long)]
    pub source_db: Option<String>,
    /// Copy only this guild (a Discord id).
    #[arg(long)]
    pub guild: Option<String>,
    /// Print the plan (what would be inserted, skipped, remapped) and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Replace documents that already exist (default: skip them).
    #[arg(long)]
    pub overwrite: bool,
    /// Catch up after an earlier clone: copy what is new, update what changed in the
    /// source since, and list (never delete) what an earlier run copied that is gone from it.
    #[arg(long)]
    pub sync: bool,
    /// After the copy (a sync), keep applying the source's changes as they happen, with the
    /// lag shown, until Ctrl-C or `heimdall migrate cancel`; then a last catch-up and the
    /// verification. Needs change streams on the source (a replica set).
    #[arg(long)]
    pub follow: bool,
    /// Copy although this instance's ENCRYPTION_KEY cannot decrypt the source's secrets.
    #[arg(long)]
    pub allow_key_mismatch: bool,
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Documents per batch.
    #[arg(long, default_value_t = 1000, hide = true)]
    pub batch_size: usize,
}

/// Arguments of `heimdall migrate legacy`.
#[derive(Debug, Args)]
pub struct LegacyArgs {
    /// The old bot's MongoDB.
    #[command(flatten)]
    pub source: SourceArgs,
    /// The old bot's database (default: the one in --source).
    #[arg(long)]
    pub source_db: Option<String>,
    /// Import only this guild (a Discord id).
    #[arg(long)]
    pub guild: Option<String>,
    /// The name of the old bot's modmail collection.
    #[arg(long, default_value = "modmail")]
    pub modmail_collection: String,
    /// Print the plan (records found, to import, to skip, errors) and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Legacy records per batch.
    #[arg(long, default_value_t = 500, hide = true)]
    pub batch_size: usize,
}

/// Arguments of `heimdall migrate resume`.
#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The run id.
    pub run_id: String,
    /// The source, when the run did not store its connection string (it must reach the
    /// run's own data set).
    #[command(flatten)]
    pub source: SourceArgs,
    /// Resume although --source is another server, database or data set than the run's.
    #[arg(long)]
    pub force_source: bool,
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `heimdall migrate undo`.
#[derive(Debug, Args)]
pub struct UndoArgs {
    /// The run to undo.
    pub run_id: String,
    /// Only show what the undo would do (per collection: remove, restore, conflicts).
    #[arg(long)]
    pub dry_run: bool,
    /// Undo documents changed since the run wrote them too; their changes are lost.
    #[arg(long)]
    pub force: bool,
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Journal entries per batch.
    #[arg(long, default_value_t = 1000, hide = true)]
    pub batch_size: usize,
}

/// Who runs the CLI, for run records.
fn cli_user() -> String {
    format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    )
}

async fn migrate(cmd: MigrateCommand) -> anyhow::Result<ExitCode> {
    let config = Config::from_env()?;
    let opened = heimdall_host::startup::open_database(&config).await?;
    let result = migrate_on(cmd, &config, &opened).await;
    // Closed here, while the runtime runs: a client whose last handle drops ends its
    // sessions on a task of the driver's own, which panicked when the process exited under
    // it (the runs close their sources the same way).
    heimdall_base::db::close(opened.client.clone()).await;
    result
}

async fn migrate_on(
    cmd: MigrateCommand,
    config: &Config,
    opened: &heimdall_host::startup::OpenDatabase,
) -> anyhow::Result<ExitCode> {
    use crate::term;
    use heimdall_host::migration::{clone, runs::RunStore, ProgressSink};
    let registry = heimdall_host::plugin::Registry::new(crate::plugins::all())?.catalog();
    let env = clone::MigrationEnv {
        target: opened.db.clone(),
        target_uri: opened.uri.clone(),
        registry,
        crypto: config
            .encryption_key
            .as_ref()
            .map(heimdall_host::crypto::Crypto::new),
        lease_ttl: clone::lease_ttl_from_env(),
        stall_after: heimdall_host::migration::stall_after_from_env(),
        read_wait: heimdall_host::migration::read_wait_from_env(),
        fail_point: None,
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let on_ctrl_c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("stopping at the next batch… (the run can be resumed)");
            on_ctrl_c.cancel();
        }
    });
    let sink: std::sync::Arc<dyn ProgressSink> = std::sync::Arc::new(term::TerminalSink::new());
    let finish = |record: heimdall_host::migration::runs::RunRecord, json: bool| {
        if json {
            out(&format!("{}\n", record.to_json()));
        } else {
            out(&term::summary(&record));
        }
        use heimdall_host::migration::runs::RunStatus;
        let verified = record.verification.as_ref().is_some_and(|v| v.ok);
        match (record.status, record.failed()) {
            (RunStatus::Completed, 0) if verified => ExitCode::SUCCESS,
            (RunStatus::Completed, _) if verified => ExitCode::from(2),
            _ => ExitCode::FAILURE,
        }
    };
    match cmd {
        MigrateCommand::Clone(a) => {
            let mut opts = clone::CloneOptions::new(a.source.require()?, cli_user());
            opts.source_db = a.source_db;
            opts.guild = a.guild;
            opts.dry_run = a.dry_run;
            opts.overwrite = a.overwrite;
            opts.sync = a.sync;
            opts.follow = a.follow;
            opts.allow_key_mismatch = a.allow_key_mismatch;
            opts.batch_size = a.batch_size;
            match clone::start(&env, opts, sink, cancel).await? {
                clone::Outcome::Plan(plan) => {
                    if a.json {
                        out(&format!("{}\n", serde_json::to_string(&plan)?));
                    } else {
                        out(&term::plan_summary(&plan));
                    }
                    Ok(ExitCode::SUCCESS)
                }
                clone::Outcome::Run(record) => Ok(finish(*record, a.json)),
            }
        }
        MigrateCommand::Legacy(a) => {
            let mut opts = heimdall_host::migration::legacy::engine::LegacyOptions::new(
                a.source.require()?,
                cli_user(),
            );
            opts.source_db = a.source_db;
            opts.guild = a.guild;
            opts.modmail_collection = a.modmail_collection;
            opts.dry_run = a.dry_run;
            opts.batch_size = a.batch_size;
            match heimdall_host::migration::legacy::engine::start(&env, opts, sink, cancel).await? {
                heimdall_host::migration::legacy::engine::Outcome::Plan(plan) => {
                    if a.json {
                        out(&format!("{}\n", serde_json::to_string(&plan)?));
                    } else {
                        let mut t =
                            format!("dry run against {} — nothing was written\n", plan.source);
                        t.push_str(&format!(
                            "{:>4}  {:<18} {:<16} {:>9} {:>9} {:>9} {:>8}\n",
                            "step", "label", "collection", "found", "import", "skip", "errors"
                        ));
                        for s in &plan.steps {
                            t.push_str(&format!(
                                "{:>4}  {:<18} {:<16} {:>9} {:>9} {:>9} {:>8}\n",
                                s.order,
                                s.label,
                                s.collection,
                                s.found,
                                s.to_import,
                                s.to_skip,
                                s.errors
                            ));
                        }
                        for e in plan.errors.iter().take(20) {
                            t.push_str(&format!(
                                "  would fail: {} {}: {}\n",
                                e.collection, e.source_id, e.reason
                            ));
                        }
                        out(&t);
                    }
                    Ok(ExitCode::SUCCESS)
                }
                heimdall_host::migration::legacy::engine::Outcome::Run(record) => {
                    Ok(finish(*record, a.json))
                }
            }
        }
        MigrateCommand::Resume(a) => {
            let record = heimdall_host::migration::begin_resume_with(
                &env,
                &a.run_id,
                a.source.read()?,
                a.force_source,
                sink,
                cancel,
            )
            .await?
            .run()
            .await?;
            Ok(finish(record, a.json))
        }
        MigrateCommand::Undo(a) => {
            use heimdall_host::migration::undo;
            let mut o = undo::UndoOptions::new(&a.run_id, cli_user());
            o.dry_run = a.dry_run;
            o.force = a.force;
            o.batch_size = a.batch_size;
            match undo::start(&env, o, sink, cancel).await? {
                undo::Outcome::Plan(plan) => {
                    if a.json {
                        out(&format!("{}\n", serde_json::to_string(&plan)?));
                    } else {
                        out(&term::undo_plan_summary(&plan));
                    }
                    Ok(ExitCode::SUCCESS)
                }
                undo::Outcome::Run(record) => Ok(finish(*record, a.json)),
            }
        }
        MigrateCommand::Prune { older_than, json } => {
            use heimdall_host::migration::undo;
            let age = undo::parse_age(&older_than)?;
            let report = undo::prune(&env.target, age).await?;
            if json {
                out(&format!("{}\n", serde_json::to_string(&report)?));
            } else {
                out(&format!(
                    "dropped the journals of {} runs ({} entries); they can no longer be undone\n",
                    report.runs.len(),
                    report.entries
                ));
            }
            Ok(ExitCode::SUCCESS)
        }
        MigrateCommand::Cancel { run_id } => {
            RunStore::new(&env.target).request_cancel(&run_id).await?;
            println!("cancel requested: run {run_id} stops at its next batch; resume it with `heimdall migrate resume {run_id}`");
            Ok(ExitCode::SUCCESS)
        }
        MigrateCommand::Status { run_id, json } => {
            let store = RunStore::new(&env.target);
            let record = store.require(&run_id).await?;
            let live = store
                .active_lease()
                .await?
                .is_some_and(|l| l.get_str("runId") == Ok(run_id.as_str()));
            if json {
                let mut v = record.to_json();
                v["active"] = serde_json::Value::Bool(live);
                println!("{v}");
            } else {
                print!("{}", term::summary(&record));
                if record.status == heimdall_host::migration::runs::RunStatus::Running && !live {
                    println!("the process running it is gone; continue with `heimdall migrate resume {run_id}`");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        MigrateCommand::List => {
            for r in RunStore::new(&env.target).list(20).await? {
                println!(
                    "{}  {:<6} {:<9} imported {:>8} skipped {:>8} failed {:>6}  {} by {}",
                    r.id,
                    r.mode.as_str(),
                    r.status.as_str(),
                    r.imported(),
                    r.skipped(),
                    r.failed(),
                    r.started_at.try_to_rfc3339_string().unwrap_or_default(),
                    r.started_by
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Writes to stdout, ignoring a closed pipe (`| head`).
fn out(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().write_all(text.as_bytes());
}
