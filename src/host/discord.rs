//! The Discord side: poise over serenity, with every plugin's commands.
//!
//! Command policy lives here in one place: errors are split into user errors (shown as they
//! are, ephemeral) and internal ones (logged, generic message).

use poise::serenity_prelude as serenity;
use tracing::Instrument;

use crate::context::{Data, Error};
use crate::error::display_for_user;

/// Builds the poise framework options with the registry's commands and the owners.
pub fn framework_options(data: &Data) -> poise::FrameworkOptions<Data, Error> {
    poise::FrameworkOptions {
        commands: data.registry.commands(),
        // Owner-only commands ask the one owner policy (`owner_only`), not poise's list.
        initialize_owners: false,
        on_error: |err| Box::pin(on_error(err)),
        pre_command: |ctx| {
            Box::pin(async move {
                tracing::info!(
                    command = %ctx.command().qualified_name,
                    user = %ctx.author().id,
                    guild = ?ctx.guild_id(),
                    "command invoked"
                );
            })
        },
        ..Default::default()
    }
}

/// The check of every owner-only command (`#[poise::command(check = "owner_only")]`):
/// the one owner policy, [`Inner::owners`](crate::context::Inner::owners); anyone else is
/// told so, ephemerally.
pub async fn owner_only(ctx: crate::context::Context<'_>) -> Result<bool, Error> {
    if ctx.data().owners.is_owner(ctx.author().id.get()) {
        return Ok(true);
    }
    let text = crate::locales::t_in(ctx.locale().unwrap_or_default(), "error-owner-only", &[]);
    ctx.send(poise::CreateReply::default().content(text).ephemeral(true))
        .await?;
    Ok(false)
}

/// Shows the user what went wrong: user errors as they are, internal ones generically.
async fn on_error(err: poise::FrameworkError<'_, Data, Error>) {
    match err {
        poise::FrameworkError::Command { error, ctx, .. } => {
            let text = display_for_user(&error);
            let reply = poise::CreateReply::default().content(text).ephemeral(true);
            if let Err(e) = ctx.send(reply).await {
                tracing::warn!(error = %e, "could not send the error reply");
            }
        }
        poise::FrameworkError::NotAnOwner { ctx, .. } => {
            let reply = poise::CreateReply::default()
                .content(crate::locales::t_in(
                    ctx.locale().unwrap_or_default(),
                    "error-owner-only",
                    &[],
                ))
                .ephemeral(true);
            let _ = ctx.send(reply).await;
        }
        other => {
            if let Err(e) = poise::builtins::on_error(other).await {
                tracing::warn!(error = %e, "error while handling a framework error");
            }
        }
    }
}

/// Discord's REST client for `token`, through `proxy` when given (`DISCORD_API_PROXY`; the
/// proxy rate-limits, so this client does not).
pub fn http(token: &str, proxy: Option<&str>) -> serenity::Http {
    let mut b = serenity::HttpBuilder::new(token);
    if let Some(p) = proxy {
        b = b.proxy(p).ratelimiter_disabled(true);
    }
    b.build()
}

/// Connects to Discord with `token` and serves commands until `data.shutdown` is cancelled.
pub async fn run(data: Data, token: String) -> Result<(), Error> {
    let options = framework_options(&data);
    let dev_guild = data.config.dev_guild_id;
    let plan = data.config.shards;
    // With several processes, the one running shard 0 registers the commands, once.
    let registers = plan.is_none_or(|s| s.has_first());
    let setup_data = data.clone();
    let framework = poise::Framework::builder()
        .options(options)
        .setup(move |ctx, ready, framework| {
            Box::pin(async move {
                let commands = &framework.options().commands;
                match dev_guild {
                    _ if !registers => {}
                    Some(g) => {
                        poise::builtins::register_in_guild(ctx, commands, serenity::GuildId::new(g))
                            .await?
                    }
                    None => poise::builtins::register_globally(ctx, commands).await?,
                }
                tracing::info!(user = %ready.user.name, guilds = ready.guilds.len(), shard = ?ready.shard, "connected to Discord");
                Ok(setup_data)
            })
        })
        .build();
    let http = http(&token, data.config.discord_api_proxy.as_deref());
    let mut client =
        serenity::ClientBuilder::new_with_http(http, serenity::GatewayIntents::non_privileged())
            .framework(framework)
            .await?;
    let shards = client.shard_manager.clone();
    let shutdown = data.shutdown.clone();
    data.tasks.spawn(async move {
        shutdown.cancelled().await;
        shards.shutdown_all().await;
    });
    let span = tracing::info_span!("discord", shards = ?plan);
    match plan {
        // serenity's range includes its end.
        Some(s) => {
            client
                .start_shard_range(s.first..s.last, s.total)
                .instrument(span)
                .await?
        }
        None => client.start().instrument(span).await?,
    }
    Ok(())
}
