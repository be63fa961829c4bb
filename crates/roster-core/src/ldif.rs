//! Streaming reader for LDIF content files (RFC 2849), as exported by directory servers.
//!
//! Exports can hold hundreds of thousands of entries, so [`LdifReader`] reads one record at a
//! time from a [`BufRead`] and never holds more than the current record in memory. How much that
//! may be is capped by [`LdifLimits`]: a line, a record and the whole input each have a maximum,
//! enforced while reading, so that a path that names something other than an export (a device, a
//! log, a file that keeps growing) fails with a message instead of filling memory.
//!
//! Error messages name the line and what was expected, never bytes from the input: the path may
//! name a file that is not an export at all (`/etc/shadow`), and the messages are stored with the
//! run. (The one exception is a `changetype:` from RFC 2849's own list, which is named.)

use std::io::{BufRead, Read};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// One directory entry read from an LDIF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdifEntry {
    /// The entry's distinguished name, as written (escapes such as `\,` are kept).
    pub dn: String,
    /// Attributes in order of first appearance; repeated lines are merged into one list,
    /// under the spelling of the first occurrence.
    pub attributes: Vec<(String, Vec<Vec<u8>>)>,
    /// 1-based line number of the record's `dn:` line.
    pub line: usize,
}

impl LdifEntry {
    /// All values of an attribute, empty if it is absent. The whole description is compared
    /// case-insensitively, options included: `cn` does not match `cn;lang-en`.
    pub fn values(&self, attr: &str) -> Vec<&[u8]> {
        self.attributes
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(attr))
            .map(|(_, values)| values.iter().map(Vec::as_slice).collect())
            .unwrap_or_default()
    }

    /// The first value of `attr` that is valid UTF-8.
    pub fn first_str(&self, attr: &str) -> Option<&str> {
        self.values(attr)
            .into_iter()
            .find_map(|value| std::str::from_utf8(value).ok())
    }
}

/// A problem in the LDIF file, or a failure to read it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("LDIF line {line}: {message}")]
pub struct LdifError {
    /// 1-based physical line number; for a folded line, the line where it starts.
    pub line: usize,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
}

/// How much the reader accepts. The defaults are far above any real export's lines and records
/// (a folded 1 MB photo is a few kilobytes of lines; unfolded, 1.4 MB), and the file's default
/// is room for millions of entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LdifLimits {
    /// The longest physical line, in bytes, without its line break. A line is never held in
    /// memory beyond this, so input without line breaks (`/dev/zero`) fails here.
    pub max_line_bytes: u64,
    /// The largest record, in bytes: its physical lines (folded ones and comments included) with
    /// their line breaks, from its first line to the blank line that ends it.
    pub max_record_bytes: u64,
    /// The most bytes read from the input in all (a file that grows while it is read, or that
    /// reports no size, such as those under /proc, stops here).
    pub max_file_bytes: u64,
}

impl LdifLimits {
    /// 16 MiB.
    pub const DEFAULT_MAX_LINE_BYTES: u64 = 16 << 20;
    /// 64 MiB.
    pub const DEFAULT_MAX_RECORD_BYTES: u64 = 64 << 20;
    /// 4 GiB.
    pub const DEFAULT_MAX_FILE_BYTES: u64 = 4 << 30;
}

impl Default for LdifLimits {
    fn default() -> Self {
        LdifLimits {
            max_line_bytes: Self::DEFAULT_MAX_LINE_BYTES,
            max_record_bytes: Self::DEFAULT_MAX_RECORD_BYTES,
            max_file_bytes: Self::DEFAULT_MAX_FILE_BYTES,
        }
    }
}

/// Iterator over the records of an LDIF content file.
///
/// After a malformed record the error is yielded and reading resumes at the next record, so a
/// caller may either stop at the first error or collect them all. A read error, a cut-off last line
/// and a limit of [`LdifLimits`] end the iteration.
pub struct LdifReader<R: BufRead> {
    reader: R,
    limits: LdifLimits,
    /// Physical lines consumed so far.
    line: usize,
    /// Bytes consumed so far.
    bytes_read: u64,
    /// Bytes of the physical lines since the last empty one, and the line where they start.
    record_bytes: u64,
    record_start: usize,
    /// One line of lookahead: a line is only complete once we know the next one is not a continuation.
    peeked: Option<(usize, Vec<u8>)>,
    /// Whether the first logical line has been seen (only it may be `version:`).
    started: bool,
    /// The previous record was malformed: its remaining lines must be skipped.
    resync: bool,
    /// The last logical line read was a blank line or the end, i.e. no record is half-read.
    at_boundary: bool,
    /// A read error occurred or the input is exhausted.
    done: bool,
}

/// A line after unfolding, with comments removed.
enum Logical {
    Blank,
    Line { line: usize, text: Vec<u8> },
}

impl<R: BufRead> LdifReader<R> {
    /// Reads LDIF from `reader` with the default limits; buffering is the caller's choice (e.g. a
    /// `BufReader<File>`).
    pub fn new(reader: R) -> Self {
        Self::with_limits(reader, LdifLimits::default())
    }

    /// Reads LDIF from `reader`, refusing lines, records or input larger than `limits`.
    pub fn with_limits(reader: R, limits: LdifLimits) -> Self {
        LdifReader {
            reader,
            limits,
            line: 0,
            bytes_read: 0,
            record_bytes: 0,
            record_start: 0,
            peeked: None,
            started: false,
            resync: false,
            at_boundary: true,
            done: false,
        }
    }

    fn read_physical(&mut self) -> Result<Option<(usize, Vec<u8>)>, LdifError> {
        if let Some(peeked) = self.peeked.take() {
            return Ok(Some(peeked));
        }
        // Never more than one line over the limit (and its CR LF, and on the first line a byte order
        // mark) in memory, nor past the file's limit: `take` bounds what `read_until` may read,
        // however long the line.
        let limits = self.limits;
        let mark = if self.line == 0 { 3 } else { 0 };
        let line_budget = limits.max_line_bytes.saturating_add(2 + mark);
        let file_budget = limits
            .max_file_bytes
            .saturating_sub(self.bytes_read)
            .saturating_add(1);
        let budget = line_budget.min(file_budget);
        let mut buf = Vec::new();
        let read = (&mut self.reader).take(budget).read_until(b'\n', &mut buf);
        let n = match read {
            Ok(n) => u64::try_from(n).unwrap_or(u64::MAX),
            Err(error) => {
                self.done = true;
                return Err(LdifError {
                    line: self.line + 1,
                    message: format!("cannot read the file: {error}"),
                });
            }
        };
        self.bytes_read = self.bytes_read.saturating_add(n);
        if self.bytes_read > limits.max_file_bytes {
            return Err(self.limit_error(
                self.line + 1,
                format!(
                    "the file is larger than `max_file_bytes` ({} bytes), so nothing was read from it; if \
                     it is the right file, raise `max_file_bytes` in the directory settings",
                    limits.max_file_bytes
                ),
            ));
        }
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        let complete = buf.last() == Some(&b'\n');
        if complete {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        // Editors on Windows like to prepend a byte order mark.
        if self.line == 1 && buf.starts_with(b"\xEF\xBB\xBF") {
            buf.drain(..3);
        }
        let length = u64::try_from(buf.len()).unwrap_or(u64::MAX);
        if length > limits.max_line_bytes || (!complete && n == budget) {
            return Err(self.limit_error(
                self.line,
                format!(
                    "this line is longer than `max_line_bytes` ({} bytes), so nothing was read from the \
                     file; it may not be an LDIF export. If it is the right file, raise `max_line_bytes` \
                     in the directory settings",
                    limits.max_line_bytes
                ),
            ));
        }
        if !complete && !buf.is_empty() {
            // RFC 2849 ends every line of a record with a line break, so a file that stops
            // inside a line was cut off (a copy that ran out of space, a transfer that broke),
            // even when the tail is a space that continues the line before it. Read as
            // complete, its missing entries would look like users who left.
            self.done = true;
            return Err(LdifError {
                line: self.line,
                message:
                    "the file ends in the middle of this line, without a line break: it looks \
                          truncated, so nothing was read from it. If the file is complete, end it \
                          with a line break"
                        .to_owned(),
            });
        }
        if buf.is_empty() {
            self.record_bytes = 0;
        } else {
            if self.record_bytes == 0 {
                self.record_start = self.line;
            }
            self.record_bytes = self.record_bytes.saturating_add(n);
            if self.record_bytes > limits.max_record_bytes {
                return Err(self.limit_error(
                    self.line,
                    format!(
                        "the record that starts at line {} is larger than `max_record_bytes` ({} bytes), \
                         so nothing was read from the file; records are separated by a blank line. If \
                         it is the right file, raise `max_record_bytes` in the directory settings",
                        self.record_start, limits.max_record_bytes
                    ),
                ));
            }
        }
        Ok(Some((self.line, buf)))
    }

    /// A limit ends the read: what follows can't be trusted to start at a record.
    fn limit_error(&mut self, line: usize, message: String) -> LdifError {
        self.done = true;
        LdifError { line, message }
    }

    fn read_logical(&mut self) -> Result<Option<Logical>, LdifError> {
        // A malformed line counts as part of a record, so that its neighbours are skipped with it.
        let logical = self.read_logical_line();
        self.at_boundary = matches!(logical, Ok(None | Some(Logical::Blank)));
        logical
    }

    fn read_logical_line(&mut self) -> Result<Option<Logical>, LdifError> {
        loop {
            let Some((line, mut text)) = self.read_physical()? else {
                return Ok(None);
            };
            if text.is_empty() {
                return Ok(Some(Logical::Blank));
            }
            if text.first() == Some(&b' ') {
                // Every continuation of the previous line has been absorbed already, so this one
                // follows a blank line: tolerate stray whitespace, reject stray content.
                if text.iter().all(u8::is_ascii_whitespace) {
                    return Ok(Some(Logical::Blank));
                }
                return Err(LdifError {
                    line,
                    message: "this line starts with a space, which continues the previous line, \
                              but there is no line to continue; remove the leading space"
                        .to_owned(),
                });
            }
            loop {
                match self.read_physical()? {
                    Some((_, next)) if next.first() == Some(&b' ') => {
                        text.extend_from_slice(next.get(1..).unwrap_or_default());
                    }
                    Some(other) => {
                        self.peeked = Some(other);
                        break;
                    }
                    None => break,
                }
            }
            if text.first() == Some(&b'#') {
                continue;
            }
            return Ok(Some(Logical::Line { line, text }));
        }
    }

    /// Skips the physical lines up to the next blank line.
    fn skip_rest_of_record(&mut self) -> Result<(), LdifError> {
        while let Some((_, text)) = self.read_physical()? {
            if text.is_empty() {
                break;
            }
        }
        Ok(())
    }

    fn next_record(&mut self) -> Result<Option<LdifEntry>, LdifError> {
        if self.resync {
            self.resync = false;
            self.skip_rest_of_record()?;
        }
        let (line, name, value) = loop {
            let (line, text) = match self.read_logical()? {
                None => return Ok(None),
                Some(Logical::Blank) => continue,
                Some(Logical::Line { line, text }) => (line, text),
            };
            let first_line = !self.started;
            self.started = true;
            let (name, value) = parse_line(line, &text)?;
            if first_line && name.eq_ignore_ascii_case("version") {
                check_version(line, &value)?;
                continue;
            }
            break (line, name, value);
        };
        if !name.eq_ignore_ascii_case("dn") {
            return Err(LdifError {
                line,
                message: "expected 'dn:' at the start of a record, but this line starts with another \
                          attribute; every record starts with its DN, and records are separated by a blank line"
                    .to_owned(),
            });
        }
        let dn = String::from_utf8(value).map_err(|_| LdifError {
            line,
            message: "the DN is not valid UTF-8; write it as UTF-8 text or base64-encode UTF-8 with 'dn::'"
                .to_owned(),
        })?;
        let mut entry = LdifEntry {
            dn,
            attributes: Vec::new(),
            line,
        };
        let mut directly_after_dn = true;
        while let Some(Logical::Line { line, text }) = self.read_logical()? {
            let (name, value) = parse_line(line, &text)?;
            if name.eq_ignore_ascii_case("changetype") {
                check_changetype(line, directly_after_dn, &value)?;
            } else if name.eq_ignore_ascii_case("dn") {
                return Err(LdifError {
                    line,
                    message:
                        "a second 'dn:' line in the same record; separate records with a blank line"
                            .to_owned(),
                });
            } else if directly_after_dn && name.eq_ignore_ascii_case("control") {
                return Err(LdifError {
                    line,
                    message: "LDIF controls ('control:') belong to change records, which are not supported; \
                              export the entries as plain content records"
                        .to_owned(),
                });
            } else if let Some((_, values)) = entry
                .attributes
                .iter_mut()
                .find(|(existing, _)| existing.eq_ignore_ascii_case(&name))
            {
                values.push(value);
            } else {
                entry.attributes.push((name, vec![value]));
            }
            directly_after_dn = false;
        }
        if entry.attributes.is_empty() {
            return Err(LdifError {
                line: entry.line,
                message:
                    "the record that starts on this line has no attributes, only its 'dn:' line; \
                          the file may be truncated"
                        .to_owned(),
            });
        }
        Ok(Some(entry))
    }
}

impl<R: BufRead> Iterator for LdifReader<R> {
    type Item = Result<LdifEntry, LdifError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_record() {
            Ok(Some(entry)) => Some(Ok(entry)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(error) => {
                // A read error has already set `done`; a malformed record only spoils itself.
                self.resync = !self.done && !self.at_boundary;
                Some(Err(error))
            }
        }
    }
}

fn check_version(line: usize, value: &[u8]) -> Result<(), LdifError> {
    if value.trim_ascii() == b"1" {
        return Ok(());
    }
    Err(LdifError {
        line,
        message: "unsupported LDIF version; only 'version: 1' exists".to_owned(),
    })
}

fn check_changetype(line: usize, directly_after_dn: bool, value: &[u8]) -> Result<(), LdifError> {
    if !directly_after_dn {
        return Err(LdifError {
            line,
            message: "'changetype:' must directly follow the 'dn:' line".to_owned(),
        });
    }
    if value.eq_ignore_ascii_case(b"add") {
        return Ok(());
    }
    // Named only when it is one of RFC 2849's own words: anything else may be a line of some other file.
    let named = ["modify", "delete", "modrdn", "moddn"]
        .into_iter()
        .find(|known| value.eq_ignore_ascii_case(known.as_bytes()))
        .map_or_else(
            || "this changetype".to_owned(),
            |known| format!("'changetype: {known}'"),
        );
    Err(LdifError {
        line,
        message: format!(
            "{named} is not supported: only content records (or 'changetype: add') can be \
             imported; export the entries themselves rather than a change log"
        ),
    })
}

/// Splits an unfolded `name: value`, `name:: base64` or `name:< url` line and decodes the value.
fn parse_line(line: usize, text: &[u8]) -> Result<(String, Vec<u8>), LdifError> {
    let error = |message: String| LdifError { line, message };
    if text.first() == Some(&b'\t') {
        return Err(error(
            "this line starts with a tab; a folded line continues with exactly one leading space, not a tab"
                .to_owned(),
        ));
    }
    let Some(colon) = text.iter().position(|&b| b == b':') else {
        return Err(error(
            "expected 'attribute: value' but this line has no ':'; if it continues the previous line, \
             start it with a single space"
                .to_owned(),
        ));
    };
    let (name, rest) = text.split_at(colon);
    let name = check_name(name).map_err(error)?;
    let rest = rest.get(1..).unwrap_or_default();
    match rest.first() {
        Some(b':') => {
            let encoded = rest.get(1..).unwrap_or_default().trim_ascii();
            let value = STANDARD.decode(encoded).map_err(|e| {
                // Not `e` itself: it shows the offending byte.
                let why = match e {
                    base64::DecodeError::InvalidByte(offset, _) => {
                        format!("a character that is not base64 at offset {offset}")
                    }
                    base64::DecodeError::InvalidLastSymbol(offset, _) => {
                        format!("a last character that can't end a value at offset {offset}")
                    }
                    base64::DecodeError::InvalidLength(_) => "a wrong length".to_owned(),
                    base64::DecodeError::InvalidPadding => "wrong padding".to_owned(),
                };
                error(format!(
                    "the base64 value on this line is invalid ({why}); the file may be truncated or corrupted"
                ))
            })?;
            Ok((name, value))
        }
        Some(b'<') => Err(error(
            "URL values (attr:<) are not supported; inline the value".to_owned(),
        )),
        _ => {
            let start = rest.iter().take_while(|&&b| b == b' ').count();
            let value = rest.get(start..).unwrap_or_default();
            if value.contains(&0) {
                return Err(error(
                    "the value on this line contains a NUL byte; binary values must be base64-encoded \
                     ('attribute:: ...')"
                        .to_owned(),
                ));
            }
            Ok((name, value.to_vec()))
        }
    }
}

/// Validates an attribute description (`type *(";" option)`, type a name or numeric OID).
fn check_name(name: &[u8]) -> Result<String, String> {
    if name.is_empty() {
        return Err("missing attribute name before ':'".to_owned());
    }
    if name.last() == Some(&b' ') || name.last() == Some(&b'\t') {
        return Err("whitespace between the attribute name and ':' is not allowed".to_owned());
    }
    let valid_chars = name
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b';'));
    let valid_start = name.first().is_some_and(u8::is_ascii_alphanumeric);
    let valid_options = name.split(|&b| b == b';').all(|part| !part.is_empty());
    if !(valid_chars && valid_start && valid_options) {
        return Err(
            "invalid attribute name: attribute names contain only letters, digits and '-' \
             (or are numeric OIDs like 2.5.4.3), optionally followed by ';options'"
                .to_owned(),
        );
    }
    // Only ASCII is left.
    Ok(String::from_utf8_lossy(name).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Cursor, Read};

    fn read_all(text: &str) -> Vec<Result<LdifEntry, LdifError>> {
        LdifReader::new(Cursor::new(text.as_bytes().to_vec())).collect()
    }

    fn entries(text: &str) -> Vec<LdifEntry> {
        read_all(text)
            .into_iter()
            .map(|r| r.unwrap_or_else(|e| panic!("unexpected error: {e}")))
            .collect()
    }

    /// The only result must be an error at `line` whose message contains `fragment`.
    #[track_caller]
    fn assert_single_error(text: &str, line: usize, fragment: &str) {
        let results = read_all(text);
        assert_eq!(results.len(), 1, "{results:?}");
        assert_error(&results[0], line, fragment);
    }

    #[track_caller]
    fn assert_error(result: &Result<LdifEntry, LdifError>, line: usize, fragment: &str) {
        let e = result.as_ref().unwrap_err();
        assert_eq!(e.line, line, "{e}");
        assert!(e.message.contains(fragment), "{fragment:?} not in {e}");
    }

    fn strs(entry: &LdifEntry, attr: &str) -> Vec<String> {
        entry
            .values(attr)
            .into_iter()
            .map(|v| String::from_utf8(v.to_vec()).unwrap())
            .collect()
    }

    const SAMPLE: &str = "\
version: 1

# People exported from the test directory.
# This comment is folded
  onto a second line.

dn: cn=Smith\\, John,ou=People,dc=example,dc=com
objectClass: top
objectClass: inetOrgPerson
cn: Smith, John
sn: Smith
description: This is a long description that the exporter folded because it
  went past seventy-six columns.
mail: john.smith@example.com

# Between records.

dn:: Y249TMO2d2UsIE1hcmlhLG91PVBlb3BsZSxkYz1leGFtcGxlLGRjPWNvbQ==
objectClass: inetOrgPerson
cn:: TMO2d2UsIE1hcmlh
cn:: 5pel5pys6KqeIOWQjeWJjQ==
sn: Löwe
jpegPhoto:: /9j/4AAQ

dn: uid=empty,ou=People,dc=example,dc=com
objectClass: account
uid: empty
description:
";

    #[test]
    fn reads_a_multi_entry_file() {
        let all = entries(SAMPLE);
        assert_eq!(all.len(), 3);

        let smith = &all[0];
        assert_eq!(smith.dn, "cn=Smith\\, John,ou=People,dc=example,dc=com");
        assert_eq!(smith.line, 7);
        assert_eq!(strs(smith, "objectClass"), ["top", "inetOrgPerson"]);
        assert_eq!(smith.first_str("cn"), Some("Smith, John"));
        assert_eq!(
            smith.first_str("description"),
            Some(
                "This is a long description that the exporter folded because it went past seventy-six columns."
            )
        );
        let names: Vec<&str> = smith.attributes.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["objectClass", "cn", "sn", "description", "mail"]);

        let lowe = &all[1];
        assert_eq!(lowe.dn, "cn=Löwe, Maria,ou=People,dc=example,dc=com");
        assert_eq!(lowe.line, 18);
        assert_eq!(strs(lowe, "cn"), ["Löwe, Maria", "日本語 名前"]);
        assert_eq!(lowe.first_str("sn"), Some("Löwe"));
        assert_eq!(
            lowe.values("jpegPhoto"),
            [&[0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10][..]]
        );
        assert_eq!(lowe.first_str("jpegPhoto"), None);

        let empty = &all[2];
        assert_eq!(empty.line, 25);
        assert_eq!(empty.values("description"), [&b""[..]]);
    }

    #[test]
    fn crlf_line_endings_read_the_same() {
        let crlf = SAMPLE.replace('\n', "\r\n");
        assert_eq!(entries(&crlf), entries(SAMPLE));
    }

    #[test]
    fn tiny_buffers_read_the_same() {
        let reader = BufReader::with_capacity(1, SAMPLE.as_bytes());
        let all: Vec<LdifEntry> = LdifReader::new(reader).map(Result::unwrap).collect();
        assert_eq!(all, entries(SAMPLE));
    }

    #[test]
    fn version_line_is_optional_and_may_directly_precede_the_first_record() {
        let body = "dn: cn=a\ncn: a\n";
        assert_eq!(entries(body).len(), 1);
        let direct = entries("version: 1\ndn: cn=a\ncn: a\n");
        assert_eq!(direct.len(), 1);
        assert_eq!(direct[0].line, 2);
        assert_eq!(
            entries("# header\nversion: 1\n\ndn: cn=a\ncn: a\n")[0].line,
            4
        );
    }

    #[test]
    fn unsupported_version() {
        let results = read_all("version: 2\n\ndn: cn=a\ncn: a\n");
        assert_eq!(results.len(), 2);
        assert_error(
            &results[0],
            1,
            "unsupported LDIF version; only 'version: 1'",
        );
        assert_eq!(results[1].as_ref().unwrap().dn, "cn=a");
    }

    #[test]
    fn version_is_an_ordinary_attribute_after_the_first_line() {
        let all = entries("dn: cn=a\nversion: 7\n");
        assert_eq!(all[0].first_str("version"), Some("7"));
    }

    #[test]
    fn values_match_descriptions_case_insensitively_but_exactly() {
        let entry =
            &entries("dn: cn=a\nCN: upper\ncn;lang-en: english\ncn: lower\nCn;LANG-EN: again\n")[0];
        assert_eq!(strs(entry, "cn"), ["upper", "lower"]);
        assert_eq!(strs(entry, "cn;lang-en"), ["english", "again"]);
        assert_eq!(entry.attributes[0].0, "CN");
        assert_eq!(entry.attributes[1].0, "cn;lang-en");
        assert!(entry.values("sn").is_empty());
        assert_eq!(entry.first_str("sn"), None);
    }

    #[test]
    fn first_str_skips_values_that_are_not_utf8() {
        let entry = &entries("dn: cn=a\nx:: /w==\nx: ok\n")[0];
        assert_eq!(entry.values("x"), [&[0xff][..], &b"ok"[..]]);
        assert_eq!(entry.first_str("x"), Some("ok"));
    }

    #[test]
    fn value_whitespace_handling() {
        let entry =
            &entries("dn:   cn=a\ncn:    padded  \nempty:\nspaces:   \nb64::   YQ==  \n")[0];
        assert_eq!(entry.dn, "cn=a");
        assert_eq!(entry.first_str("cn"), Some("padded  "));
        assert_eq!(entry.first_str("empty"), Some(""));
        assert_eq!(entry.first_str("spaces"), Some(""));
        assert_eq!(entry.first_str("b64"), Some("a"));
    }

    #[test]
    fn folding_removes_exactly_one_space() {
        let entry = &entries("dn: cn=a\ncn: one\n  two\n three\ndescription:\n  x\n")[0];
        assert_eq!(entry.first_str("cn"), Some("one twothree"));
        assert_eq!(entry.first_str("description"), Some("x"));
    }

    #[test]
    fn folding_may_split_names_base64_and_utf8_sequences() {
        let text = b"d\n n: cn=a\nc\n n:: TMO2\n d2U=\nsn: Lu\xc4\n \x8di\xc4\x87\n";
        let all: Vec<LdifEntry> = LdifReader::new(&text[..]).map(Result::unwrap).collect();
        assert_eq!(all[0].dn, "cn=a");
        assert_eq!(all[0].first_str("cn"), Some("Löwe"));
        assert_eq!(all[0].first_str("sn"), Some("Lučić"));
    }

    #[test]
    fn folded_dn() {
        let all = entries("dn: uid=jdoe,ou=People,dc=exam\n ple,dc=com\nuid: jdoe\n");
        assert_eq!(all[0].dn, "uid=jdoe,ou=People,dc=example,dc=com");
        assert_eq!(all[0].line, 1);
    }

    #[test]
    fn comments_inside_and_between_records_are_ignored() {
        let text = "# top\ndn: cn=a\n# inside\n  folded comment\ncn: a\n\n# between\n# records\n\n\n\ndn: cn=b\ncn: b\n";
        let all = entries(text);
        assert_eq!(all.len(), 2);
        assert_eq!(strs(&all[0], "cn"), ["a"]);
        assert_eq!(all[0].attributes.len(), 1);
        assert_eq!(all[1].line, 12);
    }

    #[test]
    fn blank_lines_with_whitespace() {
        let all = entries("\n\n \ndn: cn=a\ncn: a\n\n  \t\ndn: cn=b\ncn: b\n\n  \n");
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].line, 4);
        assert_eq!(all[1].first_str("cn"), Some("b"));
    }

    /// Regression (review of issue 4): a file cut inside a line was read as complete, and with
    /// `delete_users` the entries after the cut were deleted.
    #[test]
    fn a_file_cut_inside_a_line_is_an_error() {
        for (text, line) in [
            ("dn: cn=a\ncn: a\n\ndn: cn=b\ncn: b", 5),
            ("dn: cn=a\ncn: a\n\ndn: cn=b\ncn:: Wm/D", 5),
            ("dn: cn=a\ncn: a\n\ndn: cn=b\ncn: b\n fold", 6),
            ("dn: cn=a\ncn: a\n\ndn: cn=b,dc=exam", 4),
            // A cut just after the space that continues a folded line, or between CR and LF.
            ("dn: cn=a\nuid: jsm\n ", 3),
            ("dn: cn=a\nuid: jsm\n \t", 3),
            ("dn: cn=a\r\nuid: jsm\r", 2),
        ] {
            let all = read_all(text);
            let last = all.last().unwrap();
            assert_error(last, line, "truncated");
            assert!(all.iter().filter(|r| r.is_err()).count() == 1, "{text:?}");
        }
    }

    #[test]
    fn byte_order_mark_is_ignored() {
        let all = entries("\u{feff}version: 1\n\ndn: cn=a\ncn: a\n");
        assert_eq!(all.len(), 1);
        // A file of nothing but the mark is empty, not cut off.
        assert!(read_all("\u{feff}").is_empty());
    }

    #[test]
    fn changetype_add_is_a_content_record() {
        let all = entries("dn: cn=a\nchangetype: add\nobjectClass: person\ncn: a\n");
        assert_eq!(all.len(), 1);
        assert!(all[0].values("changetype").is_empty());
        assert_eq!(all[0].attributes.len(), 2);
    }

    #[test]
    fn other_changetypes_are_errors_naming_the_line() {
        let text = "dn: cn=a\ncn: a\n\ndn: cn=b\nchangetype: modify\nreplace: cn\ncn: b\n-\n\ndn: cn=c\ncn: c\n";
        let results = read_all(text);
        assert_eq!(results.len(), 3);
        assert_eq!(results[0].as_ref().unwrap().dn, "cn=a");
        assert_error(&results[1], 5, "'changetype: modify' is not supported");
        assert_eq!(results[2].as_ref().unwrap().dn, "cn=c");
        assert_single_error("dn: cn=a\nchangetype: delete\n", 2, "'changetype: delete'");
        assert_single_error(
            "dn: cn=a\ncn: a\nchangetype: add\n",
            3,
            "must directly follow the 'dn:' line",
        );
        assert_single_error(
            "dn: cn=a\ncontrol: 1.2.3 true\nchangetype: add\ncn: a\n",
            2,
            "controls",
        );
    }

    #[test]
    fn url_values_are_rejected() {
        assert_single_error(
            "dn: cn=a\njpegPhoto:< file:///tmp/photo.jpg\n",
            2,
            "URL values (attr:<) are not supported; inline the value",
        );
    }

    #[test]
    fn invalid_base64_is_an_error_at_the_line_where_the_value_starts() {
        assert_single_error(
            "dn: cn=a\ncn: a\nphoto:: !!!!\n",
            3,
            "base64 value on this line is invalid (a character that is not base64 at offset 0)",
        );
        assert_single_error(
            "dn:: Y249YQ\ncn: a\n",
            1,
            "base64 value on this line is invalid (wrong padding)",
        );
        // A file cut off in the middle of a folded base64 value.
        assert_single_error(
            "dn: cn=a\ncn: a\nphoto:: /9j/4AAQSkZJRgABAQEA\n YABgAAD/2w",
            4,
            "truncated",
        );
    }

    #[test]
    fn record_must_start_with_dn() {
        let results = read_all("cn: a\nsn: b\n\ndn: cn=b\ncn: b\n");
        assert_eq!(results.len(), 2);
        assert_error(
            &results[0],
            1,
            "expected 'dn:' at the start of a record, but this line starts with another attribute",
        );
        assert_eq!(results[1].as_ref().unwrap().dn, "cn=b");
    }

    #[test]
    fn missing_blank_line_between_records() {
        assert_single_error(
            "dn: cn=a\ncn: a\ndn: cn=b\ncn: b\n",
            3,
            "a second 'dn:' line",
        );
    }

    #[test]
    fn record_without_attributes_is_an_error() {
        let results = read_all("dn: cn=a\ncn: a\n\ndn: cn=truncated,dc=example\n");
        assert_eq!(results.len(), 2);
        assert_error(
            &results[1],
            4,
            "no attributes, only its 'dn:' line; the file may be truncated",
        );
        // The blank line ending the bad record must not make us skip the next one.
        let results = read_all("dn: cn=a\n\ndn: cn=b\ncn: b\n");
        assert_eq!(results.len(), 2);
        assert_error(&results[0], 1, "no attributes");
        assert_eq!(results[1].as_ref().unwrap().dn, "cn=b");
    }

    #[test]
    fn continuation_without_a_line_to_continue() {
        // The stray line starts a record, which is skipped as a whole.
        let results = read_all("\n leading space\ndn: cn=a\ncn: a\n\ndn: cn=b\ncn: b\n");
        assert_eq!(results.len(), 2);
        assert_error(&results[0], 2, "no line to continue");
        assert_eq!(results[1].as_ref().unwrap().dn, "cn=b");
    }

    #[test]
    fn malformed_lines() {
        assert_single_error("dn: cn=a\ncn a\n", 2, "has no ':'");
        assert_single_error("dn: cn=a\n\tcontinued: x\n", 2, "not a tab");
        assert_single_error(
            "dn: cn=a\ncn : a\n",
            2,
            "whitespace between the attribute name and ':'",
        );
        assert_single_error("dn: cn=a\n: a\n", 2, "missing attribute name");
        assert_single_error("dn: cn=a\nc_n: a\n", 2, "invalid attribute name");
        assert_single_error("dn: cn=a\ncn;: a\n", 2, "invalid attribute name");
        assert_single_error("dn: cn=a\ncn: a\0b\n", 2, "NUL");
    }

    #[test]
    fn non_utf8_values_are_kept_but_a_dn_must_be_utf8() {
        // Kept as bytes, plain or base64: the connector refuses them only where the filter looks.
        let all: Vec<_> = LdifReader::new(&b"dn: cn=a\nraw: \xff\xfe\n"[..]).collect();
        assert_eq!(all[0].as_ref().unwrap().values("raw"), [&[0xff, 0xfe][..]]);
        let all: Vec<_> = LdifReader::new(&b"dn: cn=a\nraw:: //4=\n"[..]).collect();
        assert_eq!(all[0].as_ref().unwrap().values("raw"), [&[0xff, 0xfe][..]]);
        let all: Vec<_> = LdifReader::new(&b"dn: cn=\xff\ncn: a\n"[..]).collect();
        assert_error(&all[0], 1, "not valid UTF-8");
        let all: Vec<_> = LdifReader::new(&b"dn:: Y249/w==\ncn: a\n"[..]).collect();
        assert_error(&all[0], 1, "not valid UTF-8");
    }

    #[test]
    fn error_display() {
        let e = read_all("dn: cn=a\ncn:< file:///x\n")
            .remove(0)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "LDIF line 2: URL values (attr:<) are not supported; inline the value"
        );
    }

    /// Fails after handing out `ok` bytes, like a disk read error halfway through a file.
    struct FailingReader {
        data: Cursor<Vec<u8>>,
    }

    impl Read for FailingReader {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.data.read(buf)? {
                0 => Err(std::io::Error::other("disk on fire")),
                n => Ok(n),
            }
        }
    }

    #[test]
    fn read_errors_end_the_iteration() {
        let reader = BufReader::new(FailingReader {
            data: Cursor::new(b"dn: cn=a\ncn: a\n\ndn: cn=b\n".to_vec()),
        });
        let results: Vec<_> = LdifReader::new(reader).collect();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0].as_ref().unwrap().dn, "cn=a");
        assert_error(&results[1], 5, "cannot read the file: disk on fire");
    }

    /// Produces a large LDIF export on the fly, so the test also shows the reader never needs the
    /// whole file in memory.
    struct Generated {
        next: usize,
        count: usize,
        pending: Cursor<Vec<u8>>,
    }

    impl Read for Generated {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            loop {
                let n = self.pending.read(buf)?;
                if n > 0 || self.next == self.count {
                    return Ok(n);
                }
                let i = self.next;
                self.next += 1;
                let record = format!(
                    "dn: uid=user{i},ou=People,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: user{i}\n\
                     cn:: {}\nmail: user{i}@example.com\n\n",
                    STANDARD.encode(format!("Üser {i}"))
                );
                self.pending = Cursor::new(record.into_bytes());
            }
        }
    }

    #[test]
    fn streams_many_entries() {
        let count = 100_000;
        let reader = BufReader::new(Generated {
            next: 0,
            count,
            pending: Cursor::new(Vec::new()),
        });
        let mut seen = 0;
        for (i, entry) in LdifReader::new(reader).enumerate() {
            let entry = entry.unwrap();
            assert_eq!(entry.line, i * 6 + 1);
            assert_eq!(entry.first_str("cn"), Some(format!("Üser {i}").as_str()));
            seen += 1;
        }
        assert_eq!(seen, count);
    }

    /// Regression (issue 19, item 2): an LDIF `file` of /dev/zero grew memory without limit, since a
    /// line was read whole however long it was. Now a line stops at `max_line_bytes`, and nothing past
    /// it is read.
    #[test]
    fn an_endless_line_stops_at_max_line_bytes() {
        let total: u64 = 64 << 20;
        let mut zeros = std::io::repeat(0).take(total);
        let results: Vec<_> = LdifReader::new(BufReader::new(&mut zeros)).collect();
        assert_eq!(results.len(), 1, "{results:?}");
        assert_error(
            &results[0],
            1,
            "this line is longer than `max_line_bytes` (16777216 bytes)",
        );
        let taken = total - zeros.limit();
        assert!(taken <= (16 << 20) + 2 + 8192, "read {taken} bytes");
    }

    /// Regression (issue 19, item 2): lines, records and the whole input are capped, each by a
    /// limit the message names (with the setting to raise); exactly at a limit is fine.
    #[test]
    fn lines_records_and_the_input_are_capped_by_the_limits() {
        let limits = LdifLimits {
            max_line_bytes: 20,
            max_record_bytes: 60,
            max_file_bytes: 800,
        };
        let read = |text: &[u8]| LdifReader::with_limits(text, limits).collect::<Vec<_>>();

        // "cn: 0123456789abcdef" is 20 bytes, with a line break of either kind.
        for ok in [
            &b"dn: cn=a\ncn: 0123456789abcdef\n"[..],
            b"dn: cn=a\r\ncn: 0123456789abcdef\r\n",
            b"\xEF\xBB\xBFdn: cn=0123456789abc\r\ncn: a\n",
        ] {
            assert!(read(ok).iter().all(Result::is_ok), "{ok:?}");
        }
        for long in [
            &b"dn: cn=a\ncn: 0123456789abcdefg\n"[..],
            b"dn: cn=a\ncn: 0123456789abcdefg\r\n",
            b"dn: cn=a\ncn: 0123456789abcdefghijklmnopqrstuvwxyz",
            b"dn: cn=a\ncn: 0123456789abcdefg\n\ndn: cn=b\ncn: b\n",
        ] {
            let results = read(long);
            assert_eq!(results.len(), 1, "a limit ends the read: {results:?}");
            assert_error(&results[0], 2, "longer than `max_line_bytes` (20 bytes)");
            assert_error(
                &results[0],
                2,
                "raise `max_line_bytes` in the directory settings",
            );
        }

        // A record of short lines that goes on and on (folded, here) stops at `max_record_bytes`:
        // 9 + 6 + 12 + 12 + 12 bytes are 51, the next line makes 63.
        let endless = format!("dn: cn=a\ncn: x\n{}", " 0123456789\n".repeat(10));
        let results = read(endless.as_bytes());
        assert_eq!(results.len(), 1, "{results:?}");
        assert_error(
            &results[0],
            6,
            "the record that starts at line 1 is larger than `max_record_bytes` (60 bytes)",
        );
        let after_blank = format!("dn: cn=a\ncn: a\n\n\n{endless}");
        let results = read(after_blank.as_bytes());
        assert_eq!(results.len(), 2, "{results:?}");
        assert_error(&results[1], 10, "the record that starts at line 5");

        // The count starts again at each blank line, and the input may be exactly the limit.
        let records = "dn: cn=a\ncn: a\n\n".repeat(50);
        assert_eq!(records.len(), 800);
        assert!(read(records.as_bytes()).iter().all(Result::is_ok));
        let more = "dn: cn=a\ncn: a\n\n".repeat(60);
        let results = read(more.as_bytes());
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 50);
        assert_error(
            results.last().unwrap(),
            151,
            "the file is larger than `max_file_bytes` (800 bytes)",
        );
        assert_eq!(results.iter().filter(|r| r.is_err()).count(), 1);
    }

    /// Regression (issue 19, item 4): errors repeated bytes of the file (`/etc/shadow` gave "found
    /// 'root:'"), and the run stores them. Every error path, fed a file holding a secret-looking
    /// marker, names the line and what was expected only.
    #[test]
    fn errors_never_repeat_the_file_contents() {
        const MARKER: &str = "s3cretMarker";
        let check = |text: &[u8], results: Vec<Result<LdifEntry, LdifError>>| {
            let errors: Vec<String> = results
                .into_iter()
                .filter_map(|r| r.err().map(|e| e.to_string()))
                .collect();
            assert!(!errors.is_empty(), "no error for {text:?}");
            for error in errors {
                assert!(
                    !error.to_lowercase().contains(&MARKER.to_lowercase()),
                    "{error}"
                );
                assert!(!error.contains("$6$"), "{error}");
            }
        };
        let cases: [&[u8]; 20] = [
            // A shadow file, a database, a /proc map: not LDIF at all.
            b"s3cretMarker:$6$salt$hash:19000:0:99999:7:::\n",
            b"SQLite format 3\0s3cretMarker\x01\x02\n\x00\n",
            b"55d0-55d1 r-xp 00000000 08:01 1234 /usr/lib/s3cretMarker.so\n",
            b"version: s3cretMarker\n\ndn: cn=a\ncn: a\n",
            b"dn: cn=a\nchangetype: s3cretMarker\n",
            b"dn: cn=s3cretMarker\n",
            b"dn: cn=a\ns3cretMarker:: !!!!\n",
            b"dn:: s3cretMarker\ncn: a\n",
            b"dn: cn=a\ns3cretMarker: a\0b\n",
            b"dn: cn=a\ns3cretMarker : a\n",
            b"dn: cn=a\ns3cretMarker_x: a\n",
            b"dn: cn=a\ns3cretMarker\n",
            b"dn: cn=a\n\ts3cretMarker: a\n",
            b"\n s3cretMarker\ndn: cn=a\ncn: a\n",
            b"dn: cn=a\ncn: a\ndn: cn=s3cretMarker\n",
            b"dn: cn=a\ncontrol: s3cretMarker true\n",
            b"dn: cn=a\ncn:< file:///s3cretMarker\n",
            b"dn: cn=s3cretMarker\xff\ncn: a\n",
            b"dn: cn=a\ncn: s3cretMarker",
            b"dn: cn=a\ns3cretMarker\n s3cretMarker\n",
        ];
        for text in cases {
            check(text, LdifReader::new(text).collect());
        }
        let limits = LdifLimits {
            max_line_bytes: 20,
            max_record_bytes: 40,
            max_file_bytes: 60,
        };
        let long = format!("dn: cn=a\ncn: {}\n", MARKER.repeat(2));
        let folded = format!("dn: cn=a\ncn: x\n {MARKER}\n {MARKER}\n {MARKER}\n");
        let large =
            format!("dn: cn=a\ncn: a\n\ndn: cn=b\ncn: {MARKER}\n\ndn: cn={MARKER}\ncn: b\n");
        for text in [long, folded, large] {
            check(
                text.as_bytes(),
                LdifReader::with_limits(text.as_bytes(), limits).collect(),
            );
        }
    }
}
