//! The command line: `heimdall run`, `heimdall seed`, ...

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::crypto::EncryptionKey;
use crate::error::user_error;
use crate::seed::{self, SeedOptions};
use crate::startup::Application;

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
    /// With --legacy: the name of the modmail collection.
    #[arg(long, default_value = "modmail")]
    pub modmail_collection: String,
    /// Drop the database first if it holds data.
    #[arg(long)]
    pub drop: bool,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::telemetry::init();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(cli)) {
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
        .find_map(|c| c.downcast_ref::<crate::config::ConfigError>())
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
        Command::Seed(args) => {
            let key = match &args.encryption_key {
                Some(k) => k.parse::<EncryptionKey>().map_err(|e| {
                    crate::error::UserError::bad_request(
                        "invalid_encryption_key",
                        format!("--encryption-key {e}"),
                    )
                })?,
                None => anyhow::bail!(crate::error::UserError::bad_request(
                    "encryption_key_missing",
                    "pass --encryption-key HEX (64 hex characters) or set ENCRYPTION_KEY",
                )),
            };
            let opts = SeedOptions {
                guilds: args.guilds,
                scale: args.scale,
                seed: args.seed,
                key,
                modmail_collection: args.modmail_collection.clone(),
                drop: args.drop,
            };
            let client = crate::db::connect(&args.uri, std::time::Duration::from_secs(10)).await?;
            crate::config::validate_db_name("--db", &args.db)?;
            let db = client.database(&args.db);
            let report = if args.legacy {
                seed::seed_legacy(&db, &opts).await?
            } else {
                seed::seed_instance(&db, &opts).await?
            };
            println!("{}", report.summary());
            Ok(ExitCode::SUCCESS)
        }
    }
}
