//! The plugins, and the one list of them.
//!
//! Each plugin is a crate of its own under `plugins/` and declares its collections, clone
//! steps, legacy mappers, commands, routes and sample data through the
//! [`heimdall_host::plugin::Plugin`] trait. Nothing below the binary names a plugin: this
//! list is the only place that does.

use std::sync::Arc;

use heimdall_host::plugin::Plugin;

pub use heimdall_plugin_attachment_blocker as attachment_blocker;
pub use heimdall_plugin_core as core;
pub use heimdall_plugin_dashboard as dashboard;
pub use heimdall_plugin_dev as dev;
pub use heimdall_plugin_logging as logging;
pub use heimdall_plugin_minecraft as minecraft;
pub use heimdall_plugin_minigames as minigames;
pub use heimdall_plugin_moderation as moderation;
pub use heimdall_plugin_modmail as modmail;
pub use heimdall_plugin_reminders as reminders;
pub use heimdall_plugin_role_buttons as role_buttons;
pub use heimdall_plugin_suggestions as suggestions;
pub use heimdall_plugin_support_core as support_core;
pub use heimdall_plugin_tags as tags;
pub use heimdall_plugin_tempvc as tempvc;
pub use heimdall_plugin_tickets as tickets;
pub use heimdall_plugin_vc_transcription as vc_transcription;
pub use heimdall_plugin_welcome as welcome;

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
