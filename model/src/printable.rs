//! Text from a remote or a file as a log line or a progress bar may show
//! it.

use std::borrow::Cow;

/// `text` with the characters that would act on a terminal or a log
/// rather than show written as escapes (`\n`, `\u{202e}`): control
/// characters (newlines, escape bytes, ...), format characters (Unicode's
/// general category Cf: the bidirectional overrides, embeddings and
/// isolates that reorder the rest of a line, zero-width spaces and
/// joiners, ...) and the line and paragraph separators. Text from a
/// remote or a file must not forge log lines, reach the terminal raw, or
/// show other than it is. Everything else, quotes included, is kept as it
/// is.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(must_escape) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if must_escape(c) {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

/// Whether [`printable`] escapes `c`: it would act on the terminal or the
/// log rather than show.
fn must_escape(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_control();
    }
    c.is_control()
        || c == '\u{2028}'
        || c == '\u{2029}'
        || FORMAT
            .binary_search_by(|&(first, last)| {
                if last < c {
                    std::cmp::Ordering::Less
                } else if first > c {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .is_ok()
}

/// The format characters (general category Cf), as ranges in order, from
/// Unicode's DerivedGeneralCategory.txt (the same in Unicode 15 to 18).
const FORMAT: [(char, char); 21] = [
    ('\u{ad}', '\u{ad}'),
    ('\u{600}', '\u{605}'),
    ('\u{61c}', '\u{61c}'),
    ('\u{6dd}', '\u{6dd}'),
    ('\u{70f}', '\u{70f}'),
    ('\u{890}', '\u{891}'),
    ('\u{8e2}', '\u{8e2}'),
    ('\u{180e}', '\u{180e}'),
    ('\u{200b}', '\u{200f}'),
    ('\u{202a}', '\u{202e}'),
    ('\u{2060}', '\u{2064}'),
    ('\u{2066}', '\u{206f}'),
    ('\u{feff}', '\u{feff}'),
    ('\u{fff9}', '\u{fffb}'),
    ('\u{110bd}', '\u{110bd}'),
    ('\u{110cd}', '\u{110cd}'),
    ('\u{13430}', '\u{1343f}'),
    ('\u{1bca0}', '\u{1bca3}'),
    ('\u{1d173}', '\u{1d17a}'),
    ('\u{e0001}', '\u{e0001}'),
    ('\u{e0020}', '\u{e007f}'),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_control_characters_and_keeps_the_rest() {
        assert_eq!(printable("it's \"fine\""), "it's \"fine\"");
        assert!(matches!(printable("Ünïcödé 日本 ✓"), Cow::Borrowed(_)));
        assert_eq!(printable("a\nERROR: b\u{1b}[2J"), "a\\nERROR: b\\u{1b}[2J");
        assert_eq!(printable("next\u{85}line"), "next\\u{85}line");
    }

    #[test]
    fn printable_escapes_bidi_and_other_format_characters() {
        // "S2MSI1C" that a terminal would show reversed after the override.
        assert_eq!(printable("x\u{202e}C1ISM2S"), "x\\u{202e}C1ISM2S");
        for c in ['\u{200b}', '\u{200d}', '\u{200e}', '\u{200f}', '\u{202a}'] {
            assert_eq!(
                printable(&format!("a{c}b")),
                format!("a\\u{{{:x}}}b", c as u32)
            );
        }
        for c in [
            '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}', '\u{61c}', '\u{feff}',
        ] {
            assert!(printable(&c.to_string()).starts_with("\\u{"), "{c:?}");
        }
        assert_eq!(printable("a\u{2028}b\u{2029}"), "a\\u{2028}b\\u{2029}");
        assert_eq!(printable("\u{e0041}"), "\\u{e0041}", "a tag character");
        // The neighbours of the ranges are kept.
        assert_eq!(
            printable("\u{2010}\u{2065}\u{2070}\u{ae}"),
            "\u{2010}\u{2065}\u{2070}\u{ae}"
        );
    }

    #[test]
    fn the_format_ranges_are_in_order_and_apart() {
        assert!(FORMAT.iter().all(|(first, last)| first <= last));
        assert!(FORMAT.windows(2).all(|w| w[0].1 < w[1].0));
    }
}
