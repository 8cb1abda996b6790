//! Plugin logs reach the host's log: a plugin is a separate shared object with
//! its own copy of `tracing`, so without this its events would go nowhere.

use crate::ffi::{level, FfiHostBox};
use abi_stable::std_types::RStr;
use std::fmt::Write as _;
use tracing::field::{Field, Visit};
use tracing::{span, Event, Level, Metadata, Subscriber};

/// Forwards every `tracing` event of this plugin to the host; the first
/// host wins, as all synchronizers of one process share it.
pub(crate) fn forward_to(host: FfiHostBox) {
    let max_level = host.max_level();
    let _ = tracing::subscriber::set_global_default(HostSubscriber { host, max_level });
}

struct HostSubscriber {
    host: FfiHostBox,
    max_level: u8,
}

fn level_number(level: &Level) -> u8 {
    match *level {
        Level::ERROR => level::ERROR,
        Level::WARN => level::WARN,
        Level::INFO => level::INFO,
        Level::DEBUG => level::DEBUG,
        Level::TRACE => level::TRACE,
    }
}

/// Formats an event as `message key=value ...`.
#[derive(Default)]
struct Formatter {
    message: String,
    fields: String,
}

impl Visit for Formatter {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }
}

impl Subscriber for HostSubscriber {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        level_number(metadata.level()) <= self.max_level
    }

    fn new_span(&self, _span: &span::Attributes<'_>) -> span::Id {
        // Spans are not forwarded; events carry their own fields.
        span::Id::from_u64(1)
    }

    fn record(&self, _span: &span::Id, _values: &span::Record<'_>) {}

    fn record_follows_from(&self, _span: &span::Id, _follows: &span::Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut formatter = Formatter::default();
        event.record(&mut formatter);
        formatter.message.push_str(&formatter.fields);
        self.host.log(
            level_number(event.metadata().level()),
            RStr::from_str(event.metadata().target()),
            RStr::from_str(&formatter.message),
        );
    }

    fn enter(&self, _span: &span::Id) {}

    fn exit(&self, _span: &span::Id) {}
}
