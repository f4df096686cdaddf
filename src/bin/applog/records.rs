//! How `tail` prints a record: `--format` (text, raw, raw0, json, hex), `-0`, and
//! `--template` with its tokens.

use std::borrow::Cow;

use serde::Serialize;

use crate::times::{record_time, rfc3339_nanos};
use crate::{Failure, Out};

/// How `tail` prints a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The record's bytes, then a newline. At a terminal, a record that is not text (not
    /// UTF-8, or with control characters other than tab) is shown as `[N bytes of binary
    /// data]`.
    Text,
    /// The record's bytes, then a newline, whatever they are (also at a terminal).
    Raw,
    /// The record's bytes, then a NUL byte (what `append --nul` reads back). Same as -0.
    Raw0,
    /// One object per line: {"seq":N,"time":T,"len":L,"data":D,"encoding":E}: E is "utf8"
    /// (D is the text) or "base64" (D is the bytes in standard base64) when the record is
    /// not UTF-8; T is the append time (RFC 3339) or null when the log has none.
    Json,
    /// A line `seq N len L`, then a `hexdump -C` dump of the bytes.
    Hex,
}

/// One piece of a `--template`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    /// Bytes printed as they are (text, and the escapes `\n`, `\t`, `\0`, `\\`, `%%`).
    Literal(Vec<u8>),
    /// `%s`: the seq.
    Seq,
    /// `%T`: the append time, RFC 3339 UTC with nanoseconds, or `-`.
    Time,
    /// `%t`: the append time in nanoseconds since the Unix epoch, or `-`.
    TimeNanos,
    /// `%l`: the payload's length in bytes.
    Len,
    /// `%p`: the payload's bytes.
    Payload,
}

/// A parsed `--template`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template(Vec<Piece>);

impl Template {
    /// Clap's parser: an unknown `%` token or `\` escape (or one cut off at the end) is a
    /// usage error naming it.
    pub fn parse(s: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut literal = Vec::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            let token = match c {
                '%' => match chars.next() {
                    Some('s') => Piece::Seq,
                    Some('T') => Piece::Time,
                    Some('t') => Piece::TimeNanos,
                    Some('l') => Piece::Len,
                    Some('p') => Piece::Payload,
                    Some('%') => {
                        literal.push(b'%');
                        continue;
                    }
                    Some(other) => {
                        return Err(format!(
                            "unknown token %{other} (the tokens are %s %T %t %l %p %%)"
                        ))
                    }
                    None => return Err("the template ends with a lone %".into()),
                },
                '\\' => {
                    let byte = match chars.next() {
                        Some('n') => b'\n',
                        Some('t') => b'\t',
                        Some('0') => 0,
                        Some('\\') => b'\\',
                        Some(other) => {
                            return Err(format!(
                                "unknown escape \\{other} (the escapes are \\n \\t \\0 \\\\)"
                            ))
                        }
                        None => return Err("the template ends with a lone \\".into()),
                    };
                    literal.push(byte);
                    continue;
                }
                c => {
                    let mut buf = [0; 4];
                    literal.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    continue;
                }
            };
            if !literal.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut literal)));
            }
            pieces.push(token);
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(Template(pieces))
    }
}

/// How records are printed, decided once from the arguments and the output.
pub enum Printer {
    Format {
        format: Format,
        /// Standard output is a terminal (text format shows binary records as a placeholder).
        terminal: bool,
    },
    Template(Template),
}

impl Printer {
    /// `format`, `-0` (raw0) and `--template` (given at most one: clap sees to it).
    pub fn new(format: Format, nul: bool, template: Option<&Template>) -> Printer {
        use std::io::IsTerminal;
        match template {
            Some(t) => Printer::Template(t.clone()),
            None => Printer::Format {
                format: if nul { Format::Raw0 } else { format },
                terminal: std::io::stdout().is_terminal(),
            },
        }
    }

    pub fn print(&self, out: &mut Out, record: &applog::Record<'_>) -> Result<(), Failure> {
        let (seq, data) = (record.seq(), record.data());
        match self {
            Printer::Template(t) => print_template(out, t, record),
            Printer::Format { format, terminal } => match format {
                Format::Text if *terminal && !is_text(data) => {
                    writeln!(out, "[{} bytes of binary data]", data.len())
                }
                Format::Text | Format::Raw => {
                    out.bytes(data)?;
                    out.bytes(b"\n")
                }
                Format::Raw0 => {
                    out.bytes(data)?;
                    out.bytes(b"\0")
                }
                Format::Json => out.json(&JsonRecord::new(record)),
                Format::Hex => {
                    writeln!(out, "seq {seq} len {}", data.len())?;
                    out.bytes(hex_dump(data).as_bytes())
                }
            },
        }
    }
}

/// Whether a payload can go to a terminal as it is: UTF-8 without control characters other
/// than tab.
fn is_text(data: &[u8]) -> bool {
    std::str::from_utf8(data).is_ok_and(|s| !s.chars().any(|c| c.is_control() && c != '\t'))
}

fn print_template(out: &mut Out, t: &Template, record: &applog::Record<'_>) -> Result<(), Failure> {
    let time = record_time(record);
    for piece in &t.0 {
        match piece {
            Piece::Literal(bytes) => out.bytes(bytes)?,
            Piece::Seq => write!(out, "{}", record.seq())?,
            Piece::Time => match time {
                Some(ns) => out.bytes(rfc3339_nanos(ns).as_bytes())?,
                None => out.bytes(b"-")?,
            },
            Piece::TimeNanos => match time {
                Some(ns) => write!(out, "{ns}")?,
                None => out.bytes(b"-")?,
            },
            Piece::Len => write!(out, "{}", record.data().len())?,
            Piece::Payload => out.bytes(record.data())?,
        }
    }
    Ok(())
}

/// A record in `--format json`: the same keys whatever the payload.
#[derive(Serialize)]
struct JsonRecord<'a> {
    seq: u64,
    /// RFC 3339 UTC with nanoseconds; `null` when the log keeps no time.
    time: Option<String>,
    len: usize,
    data: Cow<'a, str>,
    /// `utf8` or `base64`.
    encoding: &'static str,
}

impl<'a> JsonRecord<'a> {
    fn new(record: &applog::Record<'a>) -> JsonRecord<'a> {
        use base64::Engine as _;
        let bytes = record.data();
        let (data, encoding) = match std::str::from_utf8(bytes) {
            Ok(s) => (Cow::Borrowed(s), "utf8"),
            Err(_) => (
                Cow::Owned(base64::engine::general_purpose::STANDARD.encode(bytes)),
                "base64",
            ),
        };
        JsonRecord {
            seq: record.seq(),
            time: record_time(record).map(rfc3339_nanos),
            len: bytes.len(),
            data,
            encoding,
        }
    }
}

/// `hexdump -C` lines: offset, 16 bytes in hex, the printable ASCII.
fn hex_dump(data: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(data.len().div_ceil(16) * 79);
    for (i, chunk) in data.chunks(16).enumerate() {
        let _ = write!(out, "{:08x} ", i * 16);
        for j in 0..16 {
            if j == 8 {
                out.push(' ');
            }
            match chunk.get(j) {
                Some(b) => {
                    let _ = write!(out, " {b:02x}");
                }
                None => out.push_str("   "),
            }
        }
        out.push_str("  |");
        out.extend(chunk.iter().map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                char::from(b)
            } else {
                '.'
            }
        }));
        out.push_str("|\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_dump_is_hexdump_c() {
        assert_eq!(
            hex_dump(b"hello world\n"),
            "00000000  68 65 6c 6c 6f 20 77 6f  72 6c 64 0a              |hello world.|\n"
        );
        assert_eq!(hex_dump(b""), "");
    }

    #[test]
    fn text_is_utf8_without_controls_but_tab() {
        assert!(is_text(b"plain\ttext \xc3\xa9"));
        assert!(!is_text(b"line\nbreak"));
        assert!(!is_text(b"\x1b[31mred"));
        assert!(!is_text(b"\xff\xfe"));
        assert!(is_text(b""));
    }
}
