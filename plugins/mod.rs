//! The plugins, and the one list of them the host knows.
//!
//! Each plugin lives in its own folder and declares its collections, clone steps, commands
//! and routes through the [`Plugin`](crate::plugin::Plugin) trait. The host never names a
//! plugin anywhere but in [`all`].

use std::sync::Arc;

use crate::plugin::Plugin;

pub mod attachment_blocker;
pub mod core;
pub mod dashboard;
pub mod dev;
pub mod logging;
pub mod minecraft;
pub mod minigames;
pub mod moderation;
pub mod modmail;
pub mod reminders;
pub mod role_buttons;
pub mod suggestions;
pub mod support_core;
pub mod tags;
pub mod tempvc;
pub mod tickets;
pub mod vc_transcription;
pub mod welcome;

/// Every plugin, in the order they start.
pub fn all() -> Vec<Arc<dyn Plugin>> {
    vec![
        Arc::new(core::CorePlugin),
        Arc::new(dashboard::DashboardPlugin),
        Arc::new(attachment_blocker::AttachmentBlockerPlugin),
        Arc::new(logging::LoggingPlugin),
        Arc::new(minecraft::MinecraftPlugin),
        Arc::new(minigames::MinigamesPlugin),
        Arc::new(moderation::ModerationPlugin),
        Arc::new(modmail::ModmailPlugin),
        Arc::new(reminders::RemindersPlugin),
        Arc::new(role_buttons::RoleButtonsPlugin),
        Arc::new(suggestions::SuggestionsPlugin),
        Arc::new(support_core::SupportCorePlugin),
        Arc::new(tags::TagsPlugin),
        Arc::new(tempvc::TempVcPlugin),
        Arc::new(tickets::TicketsPlugin),
        Arc::new(vc_transcription::VcTranscriptionPlugin),
        Arc::new(welcome::WelcomePlugin),
        Arc::new(dev::DevPlugin::default()),
    ]
}
