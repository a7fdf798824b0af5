//! Who owns the bot: the one policy every door asks — slash commands, API routes and the
//! gateway. Owners are `OWNER_IDS`, plus the application's owner and its team's owner and
//! admins once Discord has told the bot who they are (at start-up, over its REST API).

use std::collections::BTreeSet;
use std::sync::RwLock;

use poise::serenity_prelude as serenity;

/// The bot's owners.
#[derive(Debug, Default)]
pub struct Owners {
    configured: Vec<u64>,
    discovered: RwLock<BTreeSet<u64>>,
}

impl Owners {
    /// The owners named in `OWNER_IDS`; Discord's are learnt later.
    pub fn new(configured: Vec<u64>) -> Self {
        Self {
            configured,
            discovered: RwLock::default(),
        }
    }

    /// Whether `user` is an owner.
    pub fn is_owner(&self, user: u64) -> bool {
        self.configured.contains(&user)
            || self.discovered.read().expect("owners lock").contains(&user)
    }

    /// Learns the application's owners from Discord's application object: the owner of
    /// the application, or of its team and the team's admins. Replaces what was learnt
    /// before. Read field by field, so a field Discord no longer sends breaks nothing.
    pub fn learn(&self, app: &serde_json::Value) {
        let id = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse::<u64>().ok());
        let mut found = BTreeSet::new();
        found.extend(id(&app["owner"]["id"]));
        let team = &app["team"];
        found.extend(id(&team["owner_user_id"]));
        if let Some(members) = team["members"].as_array() {
            found.extend(
                members
                    .iter()
                    .filter(|m| m["role"] == "admin")
                    .filter_map(|m| id(&m["user"]["id"])),
            );
        }
        tracing::info!(owners = ?found, "learnt the application's owners from Discord");
        *self.discovered.write().expect("owners lock") = found;
    }

    /// Asks Discord who owns the application (`GET /oauth2/applications/@me`).
    pub async fn refresh(&self, http: &serenity::Http) -> anyhow::Result<()> {
        use serenity::{LightMethod, Request, Route};
        let response = http
            .request(Request::new(
                Route::Oauth2ApplicationCurrent,
                LightMethod::Get,
            ))
            .await?;
        let app: serde_json::Value = serde_json::from_slice(&response.bytes().await?)?;
        self.learn(&app);
        Ok(())
    }
}
