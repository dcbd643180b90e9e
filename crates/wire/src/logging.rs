//! Where log records go. Under systemd (stderr is the journal stream) each record is sent to
//! the journal with its key-values as journal fields; otherwise records are readable lines
//! on stderr with the key-values appended as `key=value`. Either way the filter has RUST_LOG
//! syntax.
//!
//! Structured fields: the code logs identifiers as key-values (`log::info!(peer = id; ...)`),
//! not only inside the message, so that `journalctl -u peercam PEER=3f2a…` or
//! `MEMBER=…`/`CONVERSATION=…`/`ENCODER=…` finds every line about one peer, member,
//! conversation or encoder. The journal logger upper-cases keys to make them valid field
//! names.
//!
//! This module only installs the logger; it never logs on its own.

use log::LevelFilter;

/// Where records go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// The systemd journal, with structured fields.
    Journal,
    /// Lines on stderr.
    Stderr,
}

/// The filter in force: `RUST_LOG` when set and not empty, else `configured` (the config's
/// `log.level`).
pub fn filter_spec(rust_log: Option<&str>, configured: &str) -> String {
    match rust_log.map(str::trim) {
        Some(spec) if !spec.is_empty() => spec.to_owned(),
        _ => configured.to_owned(),
    }
}

/// Installs the process's logger with `configured` as the filter unless RUST_LOG overrides
/// it. Calling it twice keeps the first logger.
pub fn init(configured: &str) -> Destination {
    let spec = filter_spec(std::env::var("RUST_LOG").ok().as_deref(), configured);
    // stderr being the journal stream, not merely JOURNAL_STREAM being set, is what tells
    // that the journal is listening: a child of a service inherits the variable even when
    // its stderr goes elsewhere.
    if systemd_journal_logger::connected_to_journal() {
        if let Ok(journal) = systemd_journal_logger::JournalLog::new() {
            let journal = journal
                .with_syslog_identifier("peercam".into())
                .with_extra_fields([("PEERCAM_VERSION", env!("CARGO_PKG_VERSION"))]);
            let filter = env_filter::Builder::new()
                .filter_level(LevelFilter::Info)
                .parse(&spec)
                .build();
            let max = filter.filter();
            let logger = env_filter::FilteredLog::new(journal, filter);
            if log::set_boxed_logger(Box::new(logger)).is_ok() {
                log::set_max_level(max);
            }
            return Destination::Journal;
        }
        // No journal socket (e.g. a container without one): stderr still reaches it.
    }
    let mut builder = env_logger::Builder::new();
    builder
        .filter_level(LevelFilter::Info)
        .parse_filters(&spec)
        .format_timestamp_millis()
        .target(env_logger::Target::Stderr);
    let _ = builder.try_init();
    Destination::Stderr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_overrides_the_config() {
        assert_eq!(filter_spec(Some("debug"), "info"), "debug");
        assert_eq!(filter_spec(Some("  "), "warn"), "warn");
        assert_eq!(filter_spec(None, "peercam=debug"), "peercam=debug");
    }
}
