//! Logs on stderr through `tracing`, muninn's way (`LEVEL: message`), and
//! the host service that lets plugins log into the same stream.

use abi_stable::std_types::RStr;
use muninn_sync_plugin_api::ffi::{level, FfiHost};
use std::fmt;
use std::io::IsTerminal;
use tracing::{Event, Level, Subscriber};
use tracing_indicatif::writer::{IndicatifWriter, Stderr};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// `LEVEL: message key=value`, as muninn's log lines look.
struct MuninnFormat;

impl<S, N> FormatEvent<S, N> for MuninnFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = String::new();
        ctx.field_format()
            .format_fields(Writer::new(&mut fields), event)?;
        writeln!(
            writer,
            "{}: {}",
            event.metadata().level(),
            safe_line(&fields)
        )
    }
}

/// The most characters one log line shows: a remote's name or message is
/// repeated in a log line at most this long.
const MAX_LINE: usize = 8192;

/// `text` as one log line may show it: control characters escaped (a
/// newline in a product name from a remote must not forge an `ERROR:`
/// line, an escape byte must not reach the terminal) and cut after
/// [`MAX_LINE`] characters, saying how much was left out.
pub fn safe_line(text: &str) -> String {
    let printable = muninn_sync_model::printable(text);
    match printable.char_indices().nth(MAX_LINE) {
        Some((cut, _)) => format!(
            "{}... ({} more characters not shown)",
            &printable[..cut],
            printable[cut..].chars().count()
        ),
        None => printable.into_owned(),
    }
}

/// Sends log events at `max_level` and above to stderr. On a terminal that
/// shows info lines, progress bars share stderr with the log
/// ([`crate::progress`]): tracing-indicatif's writer suspends them while a
/// line is written, so the two never collide.
pub fn init(max_level: LevelFilter) {
    let writer = if max_level >= LevelFilter::INFO && std::io::stderr().is_terminal() {
        BoxMakeWriter::new(IndicatifWriter::<Stderr>::new(
            crate::progress::attach_terminal(),
        ))
    } else {
        BoxMakeWriter::new(std::io::stderr)
    };
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_max_level(max_level)
        .with_ansi(false)
        .event_format(MuninnFormat)
        .init();
}

/// Logging for plugins: their events arrive here already formatted and are
/// logged with the plugin's name in front.
pub struct HostServices {
    pub plugin: &'static str,
}

impl FfiHost for HostServices {
    fn max_level(&self) -> u8 {
        match LevelFilter::current().into_level() {
            None => 0,
            Some(Level::ERROR) => level::ERROR,
            Some(Level::WARN) => level::WARN,
            Some(Level::INFO) => level::INFO,
            Some(Level::DEBUG) => level::DEBUG,
            Some(Level::TRACE) => level::TRACE,
        }
    }

    fn log(&self, event_level: u8, _target: RStr<'_>, message: RStr<'_>) {
        let plugin = self.plugin;
        let message = message.as_str();
        match event_level {
            level::ERROR => tracing::error!("[{plugin}] {message}"),
            level::WARN => tracing::warn!("[{plugin}] {message}"),
            level::INFO => tracing::info!("[{plugin}] {message}"),
            level::DEBUG => tracing::debug!("[{plugin}] {message}"),
            _ => tracing::trace!("[{plugin}] {message}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{safe_line, MAX_LINE};

    #[test]
    fn a_log_line_cannot_be_forged_or_flooded() {
        assert_eq!(
            safe_line("name\nERROR: forged\u{1b}[2J"),
            "name\\nERROR: forged\\u{1b}[2J"
        );
        let long = "x".repeat(MAX_LINE + 5);
        let shown = safe_line(&long);
        assert!(
            shown.ends_with("... (5 more characters not shown)"),
            "{shown}"
        );
        assert_eq!(shown.chars().filter(|c| *c == 'x').count(), MAX_LINE);
    }
}
