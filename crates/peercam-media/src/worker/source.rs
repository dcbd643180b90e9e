//! The glue between the camera source's health ([`SourceHealth`], pure) and the capture's
//! switch ([`SourceSwitch`]): it feeds the health the source's errors and frame count, and
//! carries out what it decides on the switch, logging each step.
//!
//! It must not decide anything itself: a source that cannot be opened, or a placeholder
//! that cannot be shown, is reported back to the health as an error of the source's.

use std::collections::VecDeque;
use std::time::Instant;

use crate::source_health::{Action, Event, SourceHealth};
use crate::source_switch::SourceSwitch;

/// The camera source's health over one capture.
pub(super) struct SourceWatch {
    /// The decisions.
    health: SourceHealth,
}

impl SourceWatch {
    /// Opens the source of a capture that has just started, and follows it from `now`.
    pub(super) fn start(switch: &SourceSwitch, now: Instant) -> SourceWatch {
        let opened = switch.open();
        let mut watch = SourceWatch {
            health: SourceHealth::new(now),
        };
        if let Err(e) = opened {
            log::warn!("{e}");
            watch.handle(switch, now, Event::Error);
        }
        watch
    }

    /// Feeds one event to the health and carries out what it says. Returns whether the
    /// picture fed to the encoder changed (the caller asks for a keyframe).
    pub(super) fn handle(&mut self, switch: &SourceSwitch, now: Instant, event: Event) -> bool {
        let mut actions: VecDeque<_> = self.health.handle(now, event).into();
        let mut switched = false;
        while let Some(action) = actions.pop_front() {
            let done = match action {
                Action::ShowPlaceholder => {
                    switched = true;
                    switch.show_placeholder()
                }
                Action::ShowSource => {
                    log::info!("camera source delivers again; showing it");
                    switched = true;
                    switch.show_source();
                    Ok(())
                }
                Action::Stop { fault, retry_in } => {
                    log::warn!(
                        "camera source stopped ({fault:?}); showing the placeholder, \
                         reopening in {retry_in:?}"
                    );
                    switch.stop();
                    Ok(())
                }
                Action::Open => switch.open(),
            };
            if let Err(e) = done {
                log::warn!("{e}");
                actions.extend(self.health.handle(now, Event::Error));
            }
        }
        switched
    }
}
