//! Minigames: tic-tac-toe and connect four (ephemeral boards) and lasting stats.

pub mod sample;

use mongodb::bson::{oid::ObjectId, Bson, DateTime, Document};
use serde::{Deserialize, Serialize};

use heimdall_host::plugin::{CloneStepSpec, CollectionSpec, Plugin};

/// The minigames plugin.
pub struct MinigamesPlugin;

/// How long a game board lives (seconds).
pub const GAME_TTL_SECS: u64 = 86_400;

#[async_trait::async_trait]
impl Plugin for MinigamesPlugin {
    fn samples(&self) -> Option<&dyn heimdall_host::seed::Samples> {
        Some(self)
    }
    fn name(&self) -> &'static str {
        "minigames"
    }
    fn description(&self) -> &'static str {
        "Tic-tac-toe and connect four in channels, with per-member stats"
    }
    fn collections(&self) -> Vec<CollectionSpec> {
        vec![
            CollectionSpec::new("tictactoe_games", "TicTacToe")
                .ephemeral("createdAt", GAME_TTL_SECS),
            CollectionSpec::new("connect4_games", "Connect4").ephemeral("createdAt", GAME_TTL_SECS),
            CollectionSpec::new("minigame_stats", "MinigameStats")
                .unique(&["guildId", "userId", "game"]),
        ]
    }
    fn clone_steps(&self) -> Vec<CloneStepSpec> {
        vec![CloneStepSpec::new("Minigame stats", &["minigame_stats"])
            .skipping(&["tictactoe_games", "connect4_games"])]
    }
}

/// `tictactoe_games` / `connect4_games`: a board in play.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Game {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// Channel snowflake.
    pub channel_id: String,
    /// Player snowflakes.
    #[serde(default)]
    pub players: Vec<String>,
    /// The board.
    #[serde(default)]
    pub board: Bson,
    /// Start (the TTL counts from here).
    pub created_at: DateTime,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}

/// `minigame_stats`: a member's record in one game.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MinigameStats {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// Member snowflake.
    pub user_id: String,
    /// `tictactoe` or `connect4`.
    pub game: String,
    /// Wins.
    #[serde(default)]
    pub wins: i32,
    /// Losses.
    #[serde(default)]
    pub losses: i32,
    /// Draws.
    #[serde(default)]
    pub draws: i32,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}
