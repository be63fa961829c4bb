//! LDAP search filters (RFC 4515): parsing with positioned, actionable errors, value
//! escaping, and an offline evaluator used for entries read from LDIF files.
//!
//! Filters are typed by administrators, so every error carries the 1-based character
//! position in the text they typed and, where we can tell, how to fix it.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// Deepest nesting accepted; hostile input must not be able to exhaust the stack.
pub const MAX_DEPTH: usize = 100;

/// A syntactically valid LDAP search filter together with the text it was parsed from.
///
/// Parsing [`LdapFilter::as_str`] again yields the same [`LdapFilter::root`] (for filters built
/// with [`LdapFilter::and`], as long as they stay within [`MAX_DEPTH`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapFilter {
    text: String,
    root: FilterNode,
}

/// One node of a parsed filter. Assertion values are raw bytes: `\XX` escapes are already decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterNode {
    /// `(&...)`: every child matches; `(&)` is absolute true (RFC 4526).
    And(Vec<FilterNode>),
    /// `(|...)`: at least one child matches; `(|)` is absolute false (RFC 4526).
    Or(Vec<FilterNode>),
    /// `(!...)`: the child does not match.
    Not(Box<FilterNode>),
    /// `(attr=value)`.
    Equality {
        /// Attribute description, options included (`cn;lang-en`).
        attr: String,
        /// Decoded assertion value.
        value: Vec<u8>,
    },
    /// `(attr=initial*any*...*last)`: at least one `*`, not just `(attr=*)`.
    Substring {
        /// Attribute description, options included.
        attr: String,
        /// Text before the first `*`, if any.
        initial: Option<Vec<u8>>,
        /// Texts between consecutive `*`, in order; never empty strings.
        any: Vec<Vec<u8>>,
        /// Text after the last `*`, if any.
        last: Option<Vec<u8>>,
    },
    /// `(attr>=value)`.
    GreaterOrEqual {
        /// Attribute description, options included.
        attr: String,
        /// Decoded assertion value.
        value: Vec<u8>,
    },
    /// `(attr<=value)`.
    LessOrEqual {
        /// Attribute description, options included.
        attr: String,
        /// Decoded assertion value.
        value: Vec<u8>,
    },
    /// `(attr=*)`.
    Present {
        /// Attribute description, options included.
        attr: String,
    },
    /// `(attr~=value)`.
    Approx {
        /// Attribute description, options included.
        attr: String,
        /// Decoded assertion value.
        value: Vec<u8>,
    },
    /// `(attr:dn:rule:=value)`, `(:dn:rule:=value)`, `(attr:=value)` and their variants.
    Extensible {
        /// Attribute description; absent in the `(:rule:=value)` form, which then has a rule.
        attr: Option<String>,
        /// Whether `:dn` was given (match the entry's DN attributes too).
        dn_attributes: bool,
        /// Matching rule (descriptor or numeric OID).
        rule: Option<String>,
        /// Decoded assertion value.
        value: Vec<u8>,
    },
}

/// Why a filter text is not a valid RFC 4515 filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid LDAP filter at position {position}: {message}")]
pub struct FilterError {
    /// 1-based character position in the text passed to [`LdapFilter::parse`]
    /// (leading whitespace counts, so it matches what the user typed).
    pub position: usize,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
}

/// Why a filter cannot be evaluated against an entry offline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterEvalError {
    /// Extensible matches depend on server-side matching rules that we do not implement.
    #[error(
        "the extensible match '{component}' can only be evaluated by an LDAP server; \
         use =, ~=, >=, <=, presence (=*) or substring filters to filter LDIF entries"
    )]
    ExtensibleMatchUnsupported {
        /// The offending component as written, without its value, e.g. `cn:dn:caseExactMatch:=`.
        component: String,
    },
}

impl LdapFilter {
    /// Parses and validates `text` (surrounding whitespace is ignored).
    pub fn parse(text: &str) -> Result<LdapFilter, FilterError> {
        let trimmed = text.trim();
        let offset = text.chars().take_while(|c| c.is_whitespace()).count();
        if trimmed.is_empty() {
            return Err(FilterError {
                position: 1,
                message: "the filter is empty; write for example (objectClass=person)".to_owned(),
            });
        }
        match Parser::new(trimmed, offset).parse_root() {
            Ok(root) => Ok(LdapFilter {
                text: trimmed.to_owned(),
                root,
            }),
            Err(error) => Err(suggest_fix(trimmed, offset, error)),
        }
    }

    /// The filter text as given, without surrounding whitespace.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The parsed filter tree.
    pub fn root(&self) -> &FilterNode {
        &self.root
    }

    /// Evaluates the filter against an entry. `values(attr)` must return all values of the
    /// attribute description `attr` as written in the filter (options included), comparing
    /// names case-insensitively. Fails for what can't be evaluated offline: extensible matches.
    ///
    /// Matching approximates caseIgnoreMatch: values are compared after Unicode lowercasing
    /// (raw bytes when not UTF-8); `>=`/`<=` compare numerically when both sides are integers.
    /// An absent attribute makes every assertion on it false (and its negation true).
    pub fn matches<'a, F>(&self, values: F) -> Result<bool, FilterEvalError>
    where
        F: Fn(&str) -> Vec<&'a [u8]>,
    {
        // Checked up front so the outcome never depends on which branch short-circuits.
        if let Some(component) = first_extensible(&self.root) {
            return Err(FilterEvalError::ExtensibleMatchUnsupported { component });
        }
        Ok(evaluate(&self.root, &values))
    }

    /// Combines this filter with another so both must match (to add clauses to a configured filter).
    ///
    /// The text is exactly `(&` + `self` + `other` + `)` with no separator, since RFC 4515 forbids
    /// whitespace between filters. Combining filters already at [`MAX_DEPTH`] gives a filter
    /// whose text `parse` would reject.
    pub fn and(&self, other: &LdapFilter) -> LdapFilter {
        LdapFilter {
            text: format!("(&{}{})", self.text, other.text),
            root: FilterNode::And(vec![self.root.clone(), other.root.clone()]),
        }
    }
}

impl fmt::Display for LdapFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for LdapFilter {
    type Err = FilterError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LdapFilter::parse(s)
    }
}

/// Escapes a value for use as an assertion value inside a filter (RFC 4515): `*`, `(`, `)`,
/// `\` and NUL become `\2a`, `\28`, `\29`, `\5c` and `\00`; everything else, non-ASCII
/// UTF-8 included, is kept as is.
///
/// Always use this when building a filter from untrusted input (a user name typed in a
/// login form, a value read from another system): it is what prevents filter injection.
pub fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '*' => out.push_str("\\2a"),
            '(' => out.push_str("\\28"),
            ')' => out.push_str("\\29"),
            '\\' => out.push_str("\\5c"),
            '\0' => out.push_str("\\00"),
            other => out.push(other),
        }
    }
    out
}

/// Replaces a parse error with a more useful one when the text is a well-known near miss.
fn suggest_fix(trimmed: &str, offset: usize, error: FilterError) -> FilterError {
    let parses = |candidate: &str| Parser::new(candidate, 0).parse_root().is_ok();
    let at_start = |message: String| FilterError {
        position: offset + 1,
        message,
    };
    let mut chars = trimmed.chars();
    let first = chars.next();
    if first != Some('(') {
        // `&((a=b)(c=d))`: the operator was put in front of the parentheses.
        if let Some(op @ ('&' | '|' | '!')) = first {
            let rest = chars.as_str();
            if let Some(inner) = rest.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
                let candidate = format!("({op}{inner})");
                if parses(&candidate) {
                    return at_start(format!(
                        "the operator '{op}' must be inside the parentheses: write {candidate}"
                    ));
                }
            }
        }
        let candidate = format!("({trimmed})");
        if parses(&candidate) {
            return at_start(format!(
                "a filter must be enclosed in parentheses: {candidate}"
            ));
        }
        return error;
    }
    // `(a=b)(c=d)`: several filters side by side instead of combined with an operator.
    if parses(&format!("(&{trimmed})")) {
        return FilterError {
            position: error.position,
            message: format!(
                "only one filter is allowed at the top level; combine several with & (all must match) \
                 or | (any may match): (&{trimmed}) or (|{trimmed})"
            ),
        };
    }
    error
}

/// Human-readable rendering of a character for error messages (spaces and control
/// characters are invisible when quoted).
fn describe(c: char) -> String {
    match c {
        ' ' => "a space".to_owned(),
        '\t' => "a tab".to_owned(),
        '\0' => "a NUL character".to_owned(),
        c if c.is_whitespace() || c.is_control() => format!("the character U+{:04X}", u32::from(c)),
        c => format!("'{c}'"),
    }
}

fn is_descr_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ';')
}

fn is_oid_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.')
}

/// A problem inside a token: (char index within the token, message).
type TokenError = (usize, String);

/// Checks an attribute description (RFC 4512 `attributedescription`): `oid *(";" option)`.
fn check_attribute_description(desc: &str) -> Result<(), TokenError> {
    let mut parts = desc.split(';');
    let attribute_type = parts.next().unwrap_or_default();
    check_oid(attribute_type, "attribute")?;
    let mut index = attribute_type.len();
    for option in parts {
        if option.is_empty() {
            return Err((
                index,
                format!(
                    "empty option after ';' in '{desc}'; remove the ';' or name an option such as lang-en"
                ),
            ));
        }
        // Skip the ';'.
        index += 1;
        if let Some((i, c)) = option
            .char_indices()
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '-'))
        {
            return Err((
                index + i,
                format!(
                    "{} is not allowed in the option '{option}' of '{desc}': options contain only letters, digits and '-'",
                    describe(c)
                ),
            ));
        }
        index += option.len();
    }
    Ok(())
}

/// Checks an RFC 4512 `oid`: a descriptor (`keystring`) or a `numericoid`.
/// `what` names the token in messages ("attribute", "matching rule").
fn check_oid(oid: &str, what: &str) -> Result<(), TokenError> {
    let Some(first) = oid.chars().next() else {
        return Err((0, format!("missing {what} name")));
    };
    if first.is_ascii_digit() {
        return check_numeric_oid(oid, what);
    }
    if !first.is_ascii_alphabetic() {
        return Err((
            0,
            format!(
                "the {what} name '{oid}' must start with a letter (or be a numeric OID such as 2.5.4.3)"
            ),
        ));
    }
    match oid
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '-'))
    {
        Some((i, '.')) => Err((
            i,
            format!(
                "'.' is only allowed in numeric OIDs such as 2.5.4.3, not in the {what} name '{oid}'"
            ),
        )),
        Some((i, c)) => Err((
            i,
            format!(
                "{} is not allowed in the {what} name '{oid}': names contain only letters, digits and '-'",
                describe(c)
            ),
        )),
        None => Ok(()),
    }
}

fn article(noun: &str) -> &'static str {
    if noun.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

fn check_numeric_oid(oid: &str, what: &str) -> Result<(), TokenError> {
    if let Some((i, c)) = oid
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_digit() || c == '.'))
    {
        return Err((
            i,
            format!(
                "{} is not allowed here: '{oid}' is neither {} {what} name (which starts with a letter) \
                 nor a numeric OID (numbers separated by dots, such as 2.5.4.3)",
                describe(c),
                article(what)
            ),
        ));
    }
    let mut index: usize = 0;
    let mut count = 0;
    for number in oid.split('.') {
        if number.is_empty() {
            // Point at the dot that lacks a number after it.
            return Err((
                index.saturating_sub(1),
                format!(
                    "the numeric OID '{oid}' has an empty component; write numbers separated by single dots, such as 2.5.4.3"
                ),
            ));
        }
        if number.len() > 1 && number.starts_with('0') {
            return Err((
                index,
                format!(
                    "the numeric OID '{oid}' has a number with a leading zero ('{number}'); remove the leading zero"
                ),
            ));
        }
        index += number.len() + 1;
        count += 1;
    }
    if count < 2 {
        return Err((
            0,
            format!(
                "'{oid}' is neither {} {what} name (which starts with a letter) nor a numeric OID \
                 (at least two numbers separated by dots, such as 2.5.4.3)",
                article(what)
            ),
        ));
    }
    Ok(())
}

/// The comparison operator of a simple item.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Operator {
    Equal,
    Approx,
    GreaterOrEqual,
    LessOrEqual,
    /// The `:=` of an extensible match.
    Extensible,
}

impl Operator {
    fn symbol(self) -> &'static str {
        match self {
            Operator::Equal => "=",
            Operator::Approx => "~=",
            Operator::GreaterOrEqual => ">=",
            Operator::LessOrEqual => "<=",
            Operator::Extensible => ":=",
        }
    }
}

/// Recursive-descent parser over characters, so that positions are character positions.
struct Parser {
    chars: Vec<char>,
    pos: usize,
    /// Characters trimmed from the front of the caller's text, so positions match what they typed.
    offset: usize,
}

impl Parser {
    fn new(text: &str, offset: usize) -> Self {
        Parser {
            chars: text.chars().collect(),
            pos: 0,
            offset,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, index: usize) -> Option<char> {
        self.chars.get(index).copied()
    }

    fn error(&self, index: usize, message: impl Into<String>) -> FilterError {
        FilterError {
            position: self.offset + index + 1,
            message: message.into(),
        }
    }

    fn unclosed(&self, open: usize) -> FilterError {
        self.error(
            self.pos,
            format!(
                "expected ')' to close the '(' at position {}",
                self.offset + open + 1
            ),
        )
    }

    fn take_while(&mut self, accept: fn(char) -> bool) -> String {
        let mut token = String::new();
        while let Some(c) = self.peek().filter(|&c| accept(c)) {
            token.push(c);
            self.pos += 1;
        }
        token
    }

    fn parse_root(&mut self) -> Result<FilterNode, FilterError> {
        match self.peek() {
            Some('(') => {}
            Some(c) => {
                return Err(self.error(
                    self.pos,
                    format!(
                        "a filter must start with '(' but this one starts with {}; \
                         enclose it in parentheses, e.g. (objectClass=person)",
                        describe(c)
                    ),
                ));
            }
            None => {
                return Err(self.error(
                    self.pos,
                    "the filter is empty; write for example (objectClass=person)",
                ));
            }
        }
        let root = self.parse_filter(1)?;
        match self.peek() {
            None => Ok(root),
            Some(')') => Err(self.error(
                self.pos,
                "unexpected ')' after the end of the filter: there are more ')' than '('",
            )),
            Some(c) => {
                let rest: String = self.chars.iter().skip(self.pos).collect();
                let hint = if rest.contains(')') {
                    "; if ')' is part of a value, write it as \\29"
                } else {
                    ""
                };
                Err(self.error(
                    self.pos,
                    format!(
                        "unexpected {} after the end of the filter{hint}",
                        describe(c)
                    ),
                ))
            }
        }
    }

    /// Parses `"(" filtercomp ")"` starting at the current '('.
    fn parse_filter(&mut self, depth: usize) -> Result<FilterNode, FilterError> {
        let open = self.pos;
        if self.peek() != Some('(') {
            return Err(self.error(open, "expected '(' to start a filter"));
        }
        if depth > MAX_DEPTH {
            return Err(self.error(
                open,
                format!("the filter is nested too deeply (more than {MAX_DEPTH} levels)"),
            ));
        }
        self.pos += 1;
        let node = match self.peek() {
            Some(op @ ('&' | '|')) => {
                self.pos += 1;
                let children = self.parse_list(op, depth)?;
                if op == '&' {
                    FilterNode::And(children)
                } else {
                    FilterNode::Or(children)
                }
            }
            Some('!') => {
                self.pos += 1;
                self.parse_not(open, depth)?
            }
            Some(')') => {
                return Err(self.error(
                    self.pos,
                    "empty filter '()': write a condition such as (cn=value), or start with &, | or !",
                ));
            }
            Some('(') => {
                return Err(self.error(
                    self.pos,
                    "unexpected '(': after '(' comes an attribute name or one of the operators &, | and !; \
                     to combine filters write (&(a=b)(c=d)), not ((a=b)(c=d))",
                ));
            }
            None => return Err(self.unclosed(open)),
            Some(_) => self.parse_item()?,
        };
        match self.peek() {
            Some(')') => {
                self.pos += 1;
                Ok(node)
            }
            None => Err(self.unclosed(open)),
            Some(c) => Err(self.error(
                self.pos,
                format!(
                    "expected ')' to close the '(' at position {} but found {}",
                    self.offset + open + 1,
                    describe(c)
                ),
            )),
        }
    }

    /// Parses the operands of `&` or `|` (possibly none, per RFC 4526).
    fn parse_list(&mut self, op: char, depth: usize) -> Result<Vec<FilterNode>, FilterError> {
        let mut children = Vec::new();
        loop {
            match self.peek() {
                Some('(') => children.push(self.parse_filter(depth + 1)?),
                // The caller reports a missing ')'.
                Some(')') | None => return Ok(children),
                Some(c) if c.is_whitespace() => {
                    return Err(self.error(
                        self.pos,
                        format!(
                            "{} is not allowed between filters; remove it, e.g. (&(a=b)(c=d))",
                            describe(c)
                        ),
                    ));
                }
                Some(c) => {
                    return Err(self.error(
                        self.pos,
                        format!(
                            "expected '(' or ')' but found {}: each operand of '{op}' must be enclosed \
                             in parentheses, e.g. ({op}(a=b)(c=d))",
                            describe(c)
                        ),
                    ));
                }
            }
        }
    }

    fn parse_not(&mut self, open: usize, depth: usize) -> Result<FilterNode, FilterError> {
        let inner = match self.peek() {
            Some('(') => self.parse_filter(depth + 1)?,
            None => return Err(self.unclosed(open)),
            Some(')') => {
                return Err(self.error(
                    self.pos,
                    "'!' must be followed by a filter in parentheses, e.g. (!(cn=value))",
                ));
            }
            Some(c) => {
                return Err(self.error(
                    self.pos,
                    format!(
                        "expected '(' after '!' but found {}: the negated filter must be enclosed in \
                         parentheses, e.g. (!(cn=value))",
                        describe(c)
                    ),
                ));
            }
        };
        if self.peek() == Some('(') {
            return Err(self.error(
                self.pos,
                "'!' negates exactly one filter; to negate several, combine them first, \
                 e.g. (!(|(a=b)(c=d)))",
            ));
        }
        Ok(FilterNode::Not(Box::new(inner)))
    }

    /// Parses a simple, presence, substring or extensible item, up to (not including) the ')'.
    fn parse_item(&mut self) -> Result<FilterNode, FilterError> {
        let attr_start = self.pos;
        let attr = self.take_while(is_descr_char);
        let op_pos = self.pos;
        let next = self.peek_at(op_pos + 1);
        let operator = match self.peek() {
            Some(':') => return self.parse_extensible(attr_start, attr),
            Some('=') => Operator::Equal,
            Some('~') if next == Some('=') => Operator::Approx,
            Some('>') if next == Some('=') => Operator::GreaterOrEqual,
            Some('<') if next == Some('=') => Operator::LessOrEqual,
            other => return Err(self.operator_error(attr_start, &attr, other, next)),
        };
        if attr.is_empty() {
            return Err(self.error(
                op_pos,
                format!(
                    "missing attribute name before '{}', e.g. (cn{}value)",
                    operator.symbol(),
                    operator.symbol()
                ),
            ));
        }
        self.check_attr(attr_start, &attr)?;
        self.pos += operator.symbol().chars().count();
        let mut parts = self.parse_value(operator)?;
        Ok(match operator {
            Operator::Approx => FilterNode::Approx {
                attr,
                value: parts.pop().unwrap_or_default(),
            },
            Operator::GreaterOrEqual => FilterNode::GreaterOrEqual {
                attr,
                value: parts.pop().unwrap_or_default(),
            },
            Operator::LessOrEqual => FilterNode::LessOrEqual {
                attr,
                value: parts.pop().unwrap_or_default(),
            },
            Operator::Equal | Operator::Extensible => equality_or_substring(attr, parts),
        })
    }

    fn check_attr(&self, start: usize, attr: &str) -> Result<(), FilterError> {
        check_attribute_description(attr)
            .map_err(|(index, message)| self.error(start + index, message))
    }

    /// Explains why no operator follows the attribute description.
    fn operator_error(
        &self,
        attr_start: usize,
        attr: &str,
        found: Option<char>,
        next: Option<char>,
    ) -> FilterError {
        let at = self.pos;
        let name = if attr.is_empty() { "attr" } else { attr };
        let message = match found {
            None if attr.is_empty() => return self.unclosed(attr_start.saturating_sub(1)),
            None => format!(
                "the filter ends after '{attr}'; expected an operator (=, ~=, >=, <=) and a value, e.g. ({attr}=value)"
            ),
            Some('!') if next == Some('=') => format!(
                "'!=' is not an LDAP filter operator; to test that a value differs write (!({name}=value))"
            ),
            Some('~') => {
                format!("'~' must be followed by '=': approximate match is written ({name}~=value)")
            }
            Some(op @ ('>' | '<')) => format!(
                "LDAP filters have no strict '{op}' operator; use '{op}=' (e.g. ({name}{op}=value)), \
                 combined with (!({name}=value)) to exclude equality"
            ),
            Some(')') => format!(
                "missing operator and value after '{attr}'; write e.g. ({attr}=value), or ({attr}=*) to test presence"
            ),
            Some(c) if c.is_whitespace() => format!(
                "{} is not allowed in an attribute description or around the operator; remove it, e.g. ({name}=value)",
                describe(c)
            ),
            Some(c) if attr.is_empty() && next == Some('(') => format!(
                "unknown operator {}; filters are combined with & (and), | (or) and ! (not)",
                describe(c)
            ),
            Some(c) if attr.is_empty() => format!(
                "expected an attribute name or one of the operators &, |, ! but found {}",
                describe(c)
            ),
            Some(c) => format!(
                "unexpected {} after '{attr}': expected an operator (=, ~=, >=, <= or := for an extensible match); \
                 attribute names contain only letters, digits and '-'",
                describe(c)
            ),
        };
        self.error(at, message)
    }

    /// Parses `[":dn"] [":" rule] ":=" value` after an optional attribute; the current char is ':'.
    fn parse_extensible(
        &mut self,
        attr_start: usize,
        attr: String,
    ) -> Result<FilterNode, FilterError> {
        let attr = if attr.is_empty() {
            None
        } else {
            self.check_attr(attr_start, &attr)?;
            Some(attr)
        };
        let mut dn_attributes = false;
        let mut rule: Option<String> = None;
        loop {
            // Skip the ':'.
            self.pos += 1;
            if self.peek() == Some('=') {
                self.pos += 1;
                break;
            }
            let token_start = self.pos;
            let token = self.take_while(is_oid_char);
            if token.is_empty() {
                let found = self.peek().map_or_else(|| "the end".to_owned(), describe);
                return Err(self.error(
                    self.pos,
                    format!(
                        "expected 'dn', a matching rule or '=' after ':' but found {found}; \
                         an extensible match is written attr:dn:rule:=value"
                    ),
                ));
            }
            if token.eq_ignore_ascii_case("dn") && !dn_attributes && rule.is_none() {
                dn_attributes = true;
            } else if rule.is_none() {
                check_oid(&token, "matching rule")
                    .map_err(|(index, message)| self.error(token_start + index, message))?;
                rule = Some(token.clone());
            } else {
                return Err(self.error(
                    token_start,
                    format!(
                        "unexpected '{token}': an extensible match has at most an attribute, ':dn' and one \
                         matching rule, written attr:dn:rule:=value"
                    ),
                ));
            }
            match self.peek() {
                Some(':') => {}
                found => {
                    let found = found.map_or_else(|| "the end".to_owned(), describe);
                    return Err(self.error(
                        self.pos,
                        format!(
                            "expected ':=' after '{token}' but found {found}; an extensible match is written \
                             attr:dn:rule:=value"
                        ),
                    ));
                }
            }
        }
        if attr.is_none() && rule.is_none() {
            return Err(self.error(
                attr_start,
                "an extensible match without an attribute needs a matching rule, \
                 e.g. (:dn:2.5.13.5:=value) or (cn:dn:=value)",
            ));
        }
        let value = self
            .parse_value(Operator::Extensible)?
            .pop()
            .unwrap_or_default();
        Ok(FilterNode::Extensible {
            attr,
            dn_attributes,
            rule,
            value,
        })
    }

    /// Reads an assertion value up to ')' or the end of the text, decoding `\XX` escapes.
    /// Only with `=` do unescaped '*' split it into substring parts; the result then has one
    /// more part than there are '*'.
    fn parse_value(&mut self, operator: Operator) -> Result<Vec<Vec<u8>>, FilterError> {
        let mut parts = vec![Vec::new()];
        let mut current: Vec<u8> = Vec::new();
        while let Some(c) = self.peek() {
            match c {
                ')' => break,
                '(' => {
                    return Err(self.error(
                        self.pos,
                        "'(' in a value must be written \\28 (and ')' as \\29)",
                    ));
                }
                '\0' => {
                    return Err(self.error(
                        self.pos,
                        "a NUL character is not allowed in a value; write it as \\00",
                    ));
                }
                '*' if operator == Operator::Equal => {
                    if current.is_empty() && parts.len() > 1 {
                        return Err(self.error(
                            self.pos,
                            "'**' is not allowed: there must be text between two '*'; use a single '*' \
                             (or write a literal '*' as \\2a)",
                        ));
                    }
                    if let Some(slot) = parts.last_mut() {
                        *slot = std::mem::take(&mut current);
                    }
                    parts.push(Vec::new());
                    self.pos += 1;
                }
                '*' => {
                    return Err(self.error(
                        self.pos,
                        format!(
                            "'*' in a value must be written \\2a: wildcards are only allowed with '=', not '{}'",
                            operator.symbol()
                        ),
                    ));
                }
                '\\' => {
                    current.push(self.parse_escape()?);
                }
                c => {
                    let mut buf = [0u8; 4];
                    current.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    self.pos += 1;
                }
            }
        }
        if let Some(slot) = parts.last_mut() {
            *slot = current;
        }
        Ok(parts)
    }

    /// Decodes `\XX` at the current position.
    fn parse_escape(&mut self) -> Result<u8, FilterError> {
        let at = self.pos;
        let first = self.peek_at(at + 1);
        let second = self.peek_at(at + 2);
        if let (Some(hi), Some(lo)) = (first.and_then(hex_digit), second.and_then(hex_digit)) {
            self.pos += 3;
            return Ok(hi * 16 + lo);
        }
        let message = match (first, second) {
            (Some(c @ ('*' | '(' | ')' | '\\')), _) => format!(
                "'\\{c}' is not a valid escape: in LDAP filters '{c}' is written \\{:02x}",
                u32::from(c)
            ),
            (None, _) => truncated_escape(),
            (Some(a), None) if hex_digit(a).is_some() => truncated_escape(),
            (Some(a), Some(b)) if hex_digit(a).is_some() => format!(
                "invalid escape '\\{a}{}': '\\' must be followed by two hexadecimal digits, e.g. \\0{a} \
                 (a literal backslash is written \\5c)",
                describe_inline(b)
            ),
            (Some(a), _) => format!(
                "invalid escape '\\{}': '\\' must be followed by two hexadecimal digits \
                 (a literal backslash is written \\5c)",
                describe_inline(a)
            ),
        };
        Err(self.error(at, message))
    }
}

fn truncated_escape() -> String {
    "the filter ends in the middle of an escape: '\\' must be followed by two hexadecimal digits \
     (a literal backslash is written \\5c)"
        .to_owned()
}

/// Like [`describe`], but for use inside a quoted snippet.
fn describe_inline(c: char) -> String {
    if c.is_whitespace() || c.is_control() {
        format!("<U+{:04X}>", u32::from(c))
    } else {
        c.to_string()
    }
}

/// Classifies the value of an `=` item from its parts between unescaped '*'.
fn equality_or_substring(attr: String, mut parts: Vec<Vec<u8>>) -> FilterNode {
    match parts.len() {
        0 | 1 => FilterNode::Equality {
            value: parts.pop().unwrap_or_default(),
            attr,
        },
        2 if parts.iter().all(Vec::is_empty) => FilterNode::Present { attr },
        _ => {
            let last = parts.pop().filter(|p| !p.is_empty());
            let mut rest = parts.into_iter();
            let initial = rest.next().filter(|p| !p.is_empty());
            FilterNode::Substring {
                attr,
                initial,
                any: rest.collect(),
                last,
            }
        }
    }
}

fn hex_digit(c: char) -> Option<u8> {
    c.to_digit(16).and_then(|d| u8::try_from(d).ok())
}

fn first_extensible(node: &FilterNode) -> Option<String> {
    match node {
        FilterNode::And(children) | FilterNode::Or(children) => {
            children.iter().find_map(first_extensible)
        }
        FilterNode::Not(inner) => first_extensible(inner),
        FilterNode::Extensible {
            attr,
            dn_attributes,
            rule,
            ..
        } => {
            let mut text = attr.clone().unwrap_or_default();
            if *dn_attributes {
                text.push_str(":dn");
            }
            if let Some(rule) = rule {
                text.push(':');
                text.push_str(rule);
            }
            text.push_str(":=");
            Some(text)
        }
        _ => None,
    }
}

fn evaluate<'a, F>(node: &FilterNode, values: &F) -> bool
where
    F: Fn(&str) -> Vec<&'a [u8]>,
{
    match node {
        FilterNode::And(children) => children.iter().all(|child| evaluate(child, values)),
        FilterNode::Or(children) => children.iter().any(|child| evaluate(child, values)),
        FilterNode::Not(inner) => !evaluate(inner, values),
        FilterNode::Equality { attr, value } | FilterNode::Approx { attr, value } => {
            let wanted = fold(value);
            values(attr).into_iter().any(|v| fold(v) == wanted)
        }
        FilterNode::Substring {
            attr,
            initial,
            any,
            last,
        } => {
            let initial = initial.as_deref().map(fold);
            let last = last.as_deref().map(fold);
            let any: Vec<Cow<'_, [u8]>> = any.iter().map(|part| fold(part)).collect();
            values(attr)
                .into_iter()
                .any(|v| substring_match(&fold(v), initial.as_deref(), &any, last.as_deref()))
        }
        FilterNode::GreaterOrEqual { attr, value } => values(attr)
            .into_iter()
            .any(|v| compare(v, value) != Ordering::Less),
        FilterNode::LessOrEqual { attr, value } => values(attr)
            .into_iter()
            .any(|v| compare(v, value) != Ordering::Greater),
        FilterNode::Present { attr } => !values(attr).is_empty(),
        // `matches` rejects these before evaluating.
        FilterNode::Extensible { .. } => false,
    }
}

/// Case-folds UTF-8 values; other bytes are compared as they are.
fn fold(value: &[u8]) -> Cow<'_, [u8]> {
    match std::str::from_utf8(value) {
        Ok(text) if text.chars().any(|c| c.is_uppercase()) => {
            Cow::Owned(text.to_lowercase().into_bytes())
        }
        _ => Cow::Borrowed(value),
    }
}

fn compare(value: &[u8], assertion: &[u8]) -> Ordering {
    match (as_integer(value), as_integer(assertion)) {
        (Some(a), Some(b)) => a.cmp(&b),
        _ => fold(value).cmp(&fold(assertion)),
    }
}

fn as_integer(value: &[u8]) -> Option<i128> {
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Components must occur in order without overlapping, hence stripping `initial` and
/// `last` before searching for the `any` parts left to right.
fn substring_match(
    value: &[u8],
    initial: Option<&[u8]>,
    any: &[Cow<'_, [u8]>],
    last: Option<&[u8]>,
) -> bool {
    let mut rest = value;
    if let Some(initial) = initial {
        match rest.strip_prefix(initial) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    if let Some(last) = last {
        match rest.strip_suffix(last) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    for part in any {
        let Some(found) = find(rest, part) else {
            return false;
        };
        rest = rest.get(found + part.len()..).unwrap_or_default();
    }
    true
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(text: &str) -> FilterNode {
        match LdapFilter::parse(text) {
            Ok(filter) => filter.root().clone(),
            Err(e) => panic!("{text:?} should parse: {e}"),
        }
    }

    fn error(text: &str) -> FilterError {
        match LdapFilter::parse(text) {
            Ok(filter) => panic!("{text:?} should not parse, got {:?}", filter.root()),
            Err(e) => e,
        }
    }

    /// Asserts the position and that the message contains `fragment`.
    #[track_caller]
    fn assert_error(text: &str, position: usize, fragment: &str) {
        let e = error(text);
        assert_eq!(e.position, position, "position for {text:?}: {e}");
        assert!(
            e.message.contains(fragment),
            "message for {text:?} should contain {fragment:?}: {}",
            e.message
        );
    }

    fn eq(attr: &str, value: &[u8]) -> FilterNode {
        FilterNode::Equality {
            attr: attr.to_owned(),
            value: value.to_vec(),
        }
    }

    fn bytes(s: &str) -> Option<Vec<u8>> {
        Some(s.as_bytes().to_vec())
    }

    // --- RFC 4515 section 4 examples ---

    #[test]
    fn rfc_simple_equality() {
        assert_eq!(node("(cn=Babs Jensen)"), eq("cn", b"Babs Jensen"));
    }

    #[test]
    fn rfc_not() {
        assert_eq!(
            node("(!(cn=Tim Howes))"),
            FilterNode::Not(Box::new(eq("cn", b"Tim Howes")))
        );
    }

    #[test]
    fn rfc_and_or_substring() {
        assert_eq!(
            node("(&(objectClass=Person)(|(sn=Jensen)(cn=Babs J*)))"),
            FilterNode::And(vec![
                eq("objectClass", b"Person"),
                FilterNode::Or(vec![
                    eq("sn", b"Jensen"),
                    FilterNode::Substring {
                        attr: "cn".into(),
                        initial: bytes("Babs J"),
                        any: vec![],
                        last: None
                    },
                ]),
            ])
        );
    }

    #[test]
    fn rfc_substring_with_any() {
        assert_eq!(
            node("(o=univ*of*mich*)"),
            FilterNode::Substring {
                attr: "o".into(),
                initial: bytes("univ"),
                any: vec![b"of".to_vec(), b"mich".to_vec()],
                last: None
            }
        );
    }

    #[test]
    fn rfc_empty_value() {
        assert_eq!(node("(seeAlso=)"), eq("seeAlso", b""));
    }

    #[test]
    fn rfc_extensible_forms() {
        let ext = |attr: Option<&str>, dn: bool, rule: Option<&str>, value: &[u8]| {
            FilterNode::Extensible {
                attr: attr.map(str::to_owned),
                dn_attributes: dn,
                rule: rule.map(str::to_owned),
                value: value.to_vec(),
            }
        };
        assert_eq!(
            node("(cn:caseExactMatch:=Fred Flintstone)"),
            ext(
                Some("cn"),
                false,
                Some("caseExactMatch"),
                b"Fred Flintstone"
            )
        );
        assert_eq!(
            node("(cn:=Betty Rubble)"),
            ext(Some("cn"), false, None, b"Betty Rubble")
        );
        assert_eq!(
            node("(sn:dn:2.4.6.8.10:=Barney Rubble)"),
            ext(Some("sn"), true, Some("2.4.6.8.10"), b"Barney Rubble")
        );
        assert_eq!(
            node("(o:dn:=Ace Industry)"),
            ext(Some("o"), true, None, b"Ace Industry")
        );
        assert_eq!(
            node("(:1.2.3:=Wilma Flintstone)"),
            ext(None, false, Some("1.2.3"), b"Wilma Flintstone")
        );
        assert_eq!(
            node("(:DN:2.4.6.8.10:=Dino)"),
            ext(None, true, Some("2.4.6.8.10"), b"Dino")
        );
    }

    #[test]
    fn rfc_escapes() {
        assert_eq!(
            node("(o=Parens R Us \\28for all your parenthetical needs\\29)"),
            eq("o", b"Parens R Us (for all your parenthetical needs)")
        );
        assert_eq!(
            node("(cn=*\\2A*)"),
            FilterNode::Substring {
                attr: "cn".into(),
                initial: None,
                any: vec![b"*".to_vec()],
                last: None
            }
        );
        assert_eq!(
            node("(filename=C:\\5cMyFile)"),
            eq("filename", b"C:\\MyFile")
        );
        assert_eq!(
            node("(sn=Lu\\c4\\8di\\c4\\87)"),
            eq("sn", "Lučić".as_bytes())
        );
        assert_eq!(
            node("(1.3.6.1.4.1.1466.0=\\04\\02\\48\\69)"),
            eq("1.3.6.1.4.1.1466.0", &[0x04, 0x02, 0x48, 0x69])
        );
    }

    // --- other valid syntax ---

    #[test]
    fn presence_substring_and_comparisons() {
        assert_eq!(
            node("(mail=*)"),
            FilterNode::Present {
                attr: "mail".into()
            }
        );
        assert_eq!(
            node("(cn=*son)"),
            FilterNode::Substring {
                attr: "cn".into(),
                initial: None,
                any: vec![],
                last: bytes("son")
            }
        );
        assert_eq!(
            node("(cn=a*b*c)"),
            FilterNode::Substring {
                attr: "cn".into(),
                initial: bytes("a"),
                any: vec![b"b".to_vec()],
                last: bytes("c")
            }
        );
        assert_eq!(
            node("(uidNumber>=1000)"),
            FilterNode::GreaterOrEqual {
                attr: "uidNumber".into(),
                value: b"1000".to_vec()
            }
        );
        assert_eq!(
            node("(uidNumber<=1000)"),
            FilterNode::LessOrEqual {
                attr: "uidNumber".into(),
                value: b"1000".to_vec()
            }
        );
        assert_eq!(
            node("(sn~=smith)"),
            FilterNode::Approx {
                attr: "sn".into(),
                value: b"smith".to_vec()
            }
        );
    }

    #[test]
    fn absolute_true_and_false() {
        assert_eq!(node("(&)"), FilterNode::And(vec![]));
        assert_eq!(node("(|)"), FilterNode::Or(vec![]));
        assert_eq!(
            node("(!(&))"),
            FilterNode::Not(Box::new(FilterNode::And(vec![])))
        );
    }

    #[test]
    fn attribute_descriptions_with_options_and_oids() {
        assert_eq!(node("(cn;lang-en=x)"), eq("cn;lang-en", b"x"));
        assert_eq!(
            node("(userCertificate;binary=*)"),
            FilterNode::Present {
                attr: "userCertificate;binary".into()
            }
        );
        assert_eq!(node("(2.5.4.3=x)"), eq("2.5.4.3", b"x"));
        assert_eq!(node("(0.0=x)"), eq("0.0", b"x"));
        assert_eq!(node("(x-my-attr2=x)"), eq("x-my-attr2", b"x"));
    }

    #[test]
    fn values_keep_spaces_utf8_and_operator_characters() {
        assert_eq!(node("(cn= a b )"), eq("cn", b" a b "));
        assert_eq!(
            node("(cn=Ünïcødé 名前)"),
            eq("cn", "Ünïcødé 名前".as_bytes())
        );
        assert_eq!(node("(cn==~<>&|!:)"), eq("cn", b"=~<>&|!:"));
        assert_eq!(node("(cn=\\2a\\28\\29\\5C\\00)"), eq("cn", b"*()\\\0"));
    }

    #[test]
    fn surrounding_whitespace_is_trimmed() {
        let filter = LdapFilter::parse(" \t(cn=a)\n ").unwrap();
        assert_eq!(filter.as_str(), "(cn=a)");
        assert_eq!(filter.to_string(), "(cn=a)");
        assert_eq!("(cn=a)".parse::<LdapFilter>().unwrap(), filter);
    }

    #[test]
    fn nesting_up_to_the_limit_is_accepted() {
        let text = format!(
            "{}(a=b){}",
            "(!".repeat(MAX_DEPTH - 1),
            ")".repeat(MAX_DEPTH - 1)
        );
        assert!(LdapFilter::parse(&text).is_ok());
    }

    // --- errors ---

    #[test]
    fn empty_filter() {
        assert_error("", 1, "empty");
        assert_error("   ", 1, "empty");
        assert_error("()", 2, "empty filter '()'");
    }

    #[test]
    fn missing_closing_parenthesis() {
        assert_error("(cn=foo", 8, "expected ')' to close the '(' at position 1");
        assert_error(
            "(&(a=b)(c=d)",
            13,
            "expected ')' to close the '(' at position 1",
        );
        assert_error(
            "(&(a=b)(c=d",
            12,
            "expected ')' to close the '(' at position 8",
        );
        assert_error("(", 2, "expected ')' to close the '(' at position 1");
        assert_error("(!", 3, "expected ')' to close the '(' at position 1");
        assert_error("(!(a=b)", 8, "expected ')' to close the '(' at position 1");
    }

    #[test]
    fn positions_count_leading_whitespace_and_characters() {
        assert_error("  (cn=a", 8, "expected ')' to close the '(' at position 3");
        // Multi-byte characters count as one position each.
        assert_error("(cn=é(", 6, "\\28");
    }

    #[test]
    fn missing_outer_parentheses() {
        assert_error(
            "objectClass=person",
            1,
            "a filter must be enclosed in parentheses: (objectClass=person)",
        );
        assert_error(
            "  cn=*",
            3,
            "a filter must be enclosed in parentheses: (cn=*)",
        );
        assert_error(
            "&(a=b)(c=d)",
            1,
            "a filter must be enclosed in parentheses: (&(a=b)(c=d))",
        );
        assert_error(
            "!(a=b)",
            1,
            "a filter must be enclosed in parentheses: (!(a=b))",
        );
        assert_error("cn=a)(", 1, "a filter must start with '('");
    }

    #[test]
    fn operator_outside_parentheses() {
        assert_error(
            "&((a=b)(c=d))",
            1,
            "the operator '&' must be inside the parentheses: write (&(a=b)(c=d))",
        );
        assert_error("|((a=b)(c=d))", 1, "write (|(a=b)(c=d))");
        assert_error("(&((a=b)(c=d)))", 4, "not ((a=b)(c=d))");
    }

    #[test]
    fn unescaped_special_characters() {
        assert_error("(cn=a(b)", 6, "'(' in a value must be written \\28");
        assert_error("(cn>=a*)", 7, "'*' in a value must be written \\2a");
        assert_error("(cn~=*)", 6, "'*' in a value must be written \\2a");
        assert_error("(cn<=*)", 6, "not '<='");
        assert_error("(cn:=a*b)", 7, "not ':='");
        assert_error("(cn=a\0b)", 6, "NUL");
        assert_error("(cn=a)b)", 7, "if ')' is part of a value, write it as \\29");
    }

    #[test]
    fn double_wildcard() {
        assert_error("(cn=**)", 6, "'**'");
        assert_error("(cn=a**b)", 7, "'**'");
        assert_error("(cn=*a**)", 8, "single '*'");
    }

    #[test]
    fn text_after_the_filter() {
        assert_error("(cn=a))", 7, "more ')' than '('");
        assert_error("(cn=a)x", 7, "unexpected 'x' after the end of the filter");
        assert_error(
            "(cn=a)(sn=b)",
            7,
            "combine several with & (all must match) or | (any may match): (&(cn=a)(sn=b)) or (|(cn=a)(sn=b))",
        );
    }

    #[test]
    fn invalid_hex_escapes() {
        assert_error("(cn=\\zz)", 5, "invalid escape '\\z'");
        assert_error("(cn=\\4g)", 5, "invalid escape '\\4g'");
        assert_error("(cn=\\4)", 5, "e.g. \\04");
        assert_error("(cn=a\\4", 6, "ends in the middle of an escape");
        assert_error("(cn=a\\", 6, "ends in the middle of an escape");
        assert_error("(cn=\\*)", 5, "'*' is written \\2a");
        assert_error("(cn=\\()", 5, "'(' is written \\28");
        assert_error("(cn=a\\)", 6, "')' is written \\29");
        assert_error(
            "(filename=C:\\MyFile)",
            13,
            "literal backslash is written \\5c",
        );
        assert_error("(cn=\\ 1)", 5, "'\\<U+0020>'");
    }

    #[test]
    fn unknown_or_malformed_operators() {
        assert_error(
            "(cn!=a)",
            4,
            "'!=' is not an LDAP filter operator; to test that a value differs write (!(cn=value))",
        );
        assert_error("(cn>a)", 4, "use '>='");
        assert_error("(cn<a)", 4, "use '<='");
        assert_error("(cn~a)", 4, "(cn~=value)");
        assert_error("(cn)", 4, "missing operator and value after 'cn'");
        assert_error("(cn", 4, "the filter ends after 'cn'");
        assert_error("(cn =a)", 4, "a space is not allowed");
        assert_error("(=a)", 2, "missing attribute name before '='");
        assert_error("(>=a)", 2, "missing attribute name before '>='");
        assert_error(
            "(#a=b)",
            2,
            "expected an attribute name or one of the operators &, |, ! but found '#'",
        );
        assert_error("(^(a=b))", 2, "unknown operator '^'");
        assert_error("(c_n=x)", 3, "unexpected '_' after 'c'");
        assert_error("(nämé=x)", 3, "unexpected 'ä' after 'n'");
    }

    #[test]
    fn malformed_filter_lists() {
        assert_error(
            "(&(a=b) (c=d))",
            8,
            "a space is not allowed between filters",
        );
        assert_error(
            "(&a=b)",
            3,
            "each operand of '&' must be enclosed in parentheses",
        );
        assert_error("(|(a=b)c=d)", 8, "each operand of '|'");
        assert_error("(!)", 3, "'!' must be followed by a filter in parentheses");
        assert_error("(!a=b)", 3, "(!(cn=value))");
        assert_error("(!(a=b)(c=d))", 8, "'!' negates exactly one filter");
    }

    #[test]
    fn invalid_attribute_descriptions() {
        assert_error("(1cn=x)", 3, "numeric OID");
        assert_error("(c.n=x)", 3, "'.' is only allowed in numeric OIDs");
        assert_error("(-cn=x)", 2, "must start with a letter");
        assert_error("(cn;=x)", 4, "empty option after ';'");
        assert_error("(cn;a;;b=x)", 6, "empty option");
        assert_error("(01.2=x)", 2, "leading zero");
        assert_error("(1.02=x)", 4, "leading zero");
        assert_error("(1.=x)", 3, "empty component");
        assert_error("(1..2=x)", 3, "empty component");
        assert_error("(123=x)", 2, "at least two numbers");
    }

    #[test]
    fn malformed_extensible_matches() {
        assert_error("(:=x)", 2, "needs a matching rule");
        assert_error("(:dn:=x)", 2, "needs a matching rule");
        assert_error("(cn:foo:bar:=x)", 9, "unexpected 'bar'");
        assert_error("(cn:x=y)", 6, "expected ':=' after 'x' but found '='");
        assert_error("(cn::=y)", 5, "expected 'dn', a matching rule or '='");
        assert_error("(cn:1.2.:=y)", 8, "empty component");
        assert_error("(cn:dn", 7, "expected ':=' after 'dn' but found the end");
        assert_error("(1cn:=x)", 3, "numeric OID");
    }

    #[test]
    fn nesting_too_deep() {
        let text = format!("{}(a=b){}", "(!".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        // The '(' that opens level 101; each "(!" is two characters.
        assert_error(&text, 2 * MAX_DEPTH + 1, "nested too deeply");
        // Hostile input must produce an error, not a stack overflow.
        let hostile = "(&".repeat(1_000_000);
        assert_error(&hostile, 2 * MAX_DEPTH + 1, "nested too deeply");
    }

    #[test]
    fn error_display() {
        assert_eq!(
            error("(cn=foo").to_string(),
            "invalid LDAP filter at position 8: expected ')' to close the '(' at position 1"
        );
    }

    /// Every truncation and every single-character corruption of valid filters must be
    /// reported (or accepted) without panicking, with a position inside the text or just past it.
    #[test]
    fn corrupted_filters_report_positions_in_range() {
        let valid = [
            "(&(objectClass=inetOrgPerson)(mail=*))",
            "(|(cn=a*b*c)(!(sn~=x))(uid>=5)(uid<=9))",
            "(sn:dn:2.4.6.8.10:=Barney Rubble)",
            "(cn=\\2a\\28é)",
        ];
        for text in valid {
            let chars: Vec<char> = text.chars().collect();
            for cut in 0..chars.len() {
                let truncated: String = chars[..cut].iter().collect();
                let e = error(&truncated);
                assert!(
                    e.position >= 1 && e.position <= cut + 1,
                    "{truncated:?}: {e}"
                );
            }
            for i in 0..chars.len() {
                for replacement in ['(', ')', '*', '\\', ' ', '\0', '=', ':', 'x', '&'] {
                    let mut corrupted = chars.clone();
                    corrupted[i] = replacement;
                    let corrupted: String = corrupted.into_iter().collect();
                    if let Err(e) = LdapFilter::parse(&corrupted) {
                        let len = corrupted.chars().count();
                        assert!(
                            e.position >= 1 && e.position <= len + 1,
                            "{corrupted:?}: {e}"
                        );
                    }
                }
            }
        }
    }

    // --- escaping ---

    #[test]
    fn escape_value_escapes_exactly_the_specials() {
        assert_eq!(escape_value("a*b(c)d\\e\0f"), "a\\2ab\\28c\\29d\\5ce\\00f");
        assert_eq!(escape_value("Lučić 名前 = ~<>&|!"), "Lučić 名前 = ~<>&|!");
        assert_eq!(escape_value(""), "");
    }

    #[test]
    fn escape_then_parse_round_trips() {
        for value in [
            "",
            "plain",
            "*",
            "**",
            "\\",
            "\\5c",
            "(x)",
            "a\0b",
            "Ünï*cødé)",
            " spaced ",
        ] {
            let filter = LdapFilter::parse(&format!("(cn={})", escape_value(value))).unwrap();
            assert_eq!(filter.root(), &eq("cn", value.as_bytes()), "{value:?}");
        }
    }

    #[test]
    fn escaping_defeats_injection() {
        for attack in [
            "*",
            "*)(uid=*",
            "admin)(|(uid=*",
            "x)(!(cn=*))(cn=x",
            "\\",
            "*)(&",
        ] {
            let text = format!("(uid={})", escape_value(attack));
            assert_eq!(node(&text), eq("uid", attack.as_bytes()), "{text}");
        }
        // Without escaping the same inputs change the filter's meaning or break it.
        assert!(matches!(node("(uid=*)"), FilterNode::Present { .. }));
        assert!(LdapFilter::parse("(uid=admin)(|(uid=*)").is_err());
    }

    // --- and ---

    #[test]
    fn and_combines_text_and_tree() {
        let a = LdapFilter::parse("(objectClass=person)").unwrap();
        let b = LdapFilter::parse(" (|(mail=*)(uid=x)) ").unwrap();
        let both = a.and(&b);
        assert_eq!(both.as_str(), "(&(objectClass=person)(|(mail=*)(uid=x)))");
        assert_eq!(
            both.root(),
            &FilterNode::And(vec![a.root().clone(), b.root().clone()])
        );
        assert_eq!(LdapFilter::parse(both.as_str()).unwrap(), both);
    }

    // --- evaluation ---

    type Entry = Vec<(&'static str, Vec<&'static [u8]>)>;

    fn entry(pairs: &[(&'static str, &[&'static str])]) -> Entry {
        pairs
            .iter()
            .map(|(name, values)| (*name, values.iter().map(|v| v.as_bytes()).collect()))
            .collect()
    }

    fn eval(filter: &str, entry: &Entry) -> Result<bool, FilterEvalError> {
        LdapFilter::parse(filter).unwrap().matches(|attr: &str| {
            entry
                .iter()
                .filter(|(name, _)| name.eq_ignore_ascii_case(attr))
                .flat_map(|(_, values)| values.iter().copied())
                .collect()
        })
    }

    #[track_caller]
    fn assert_match(filter: &str, entry: &Entry, expected: bool) {
        assert_eq!(eval(filter, entry).unwrap(), expected, "{filter}");
    }

    fn person() -> Entry {
        entry(&[
            ("objectClass", &["top", "inetOrgPerson"]),
            ("cn", &["John Smith", "Johnny"]),
            ("sn", &["Lučić"]),
            ("mail", &["john@example.com"]),
            ("uidNumber", &["10000"]),
            ("cn;lang-fr", &["Jean"]),
        ])
    }

    #[test]
    fn evaluates_equality_case_insensitively() {
        let e = person();
        assert_match("(objectClass=inetOrgPerson)", &e, true);
        assert_match("(OBJECTCLASS=INETORGPERSON)", &e, true);
        assert_match("(objectclass=person)", &e, false);
        assert_match("(cn=johnny)", &e, true);
        assert_match("(sn=LUČIĆ)", &e, true);
        assert_match("(sn=Lu\\c4\\8di\\c4\\87)", &e, true);
        assert_match("(sn~=lučić)", &e, true);
        assert_match("(cn;lang-fr=jean)", &e, true);
        assert_match("(cn=jean)", &e, false);
        assert_match("(missing=x)", &e, false);
    }

    #[test]
    fn evaluates_presence_and_boolean_operators() {
        let e = person();
        assert_match("(&(objectClass=inetOrgPerson)(mail=*))", &e, true);
        assert_match(
            "(&(objectClass=inetOrgPerson)(telephoneNumber=*))",
            &e,
            false,
        );
        assert_match("(|(telephoneNumber=*)(mail=*))", &e, true);
        assert_match("(!(telephoneNumber=*))", &e, true);
        assert_match("(!(missing=x))", &e, true);
        assert_match("(&)", &e, true);
        assert_match("(|)", &e, false);
        assert_match("(!(&))", &e, false);
        let empty = entry(&[("mail", &[])]);
        assert_match("(mail=*)", &empty, false);
    }

    #[test]
    fn evaluates_substrings_in_order_without_overlap() {
        let e = entry(&[("cn", &["John Smith"]), ("uid", &["john"])]);
        assert_match("(cn=JOHN*)", &e, true);
        assert_match("(cn=*smith)", &e, true);
        assert_match("(cn=*oh*mi*)", &e, true);
        assert_match("(cn=*mi*oh*)", &e, false);
        assert_match("(cn=j*n*s*h)", &e, true);
        assert_match("(uid=jo*hn)", &e, true);
        assert_match("(uid=joh*ohn)", &e, false);
        assert_match("(uid=*john*)", &e, true);
        assert_match("(uid=*o*o*)", &e, false);
        assert_match("(cn=*\\2a*)", &e, false);
        let star = entry(&[("cn", &["a*b"])]);
        assert_match("(cn=*\\2a*)", &star, true);
    }

    #[test]
    fn evaluates_ordering_numerically_or_as_text() {
        let e = person();
        // As text "10000" < "999"; numerically it is greater.
        assert_match("(uidNumber>=999)", &e, true);
        assert_match("(uidNumber<=999)", &e, false);
        assert_match("(uidNumber>=10000)", &e, true);
        assert_match("(uidNumber<=10000)", &e, true);
        assert_match("(uidNumber>=-5)", &e, true);
        assert_match("(sn>=m)", &e, false);
        assert_match("(sn>=L)", &e, true);
        assert_match("(sn<=LUČIĆ)", &e, true);
        assert_match("(sn<=LUC)", &e, false);
        assert_match("(missing>=0)", &e, false);
    }

    #[test]
    fn evaluates_binary_values_bytewise() {
        let binary: Entry = vec![
            ("1.3.6.1.4.1.1466.0", vec![&[0x04, 0x02, 0x48, 0x69]]),
            ("blob", vec![&[0xff, 0x41]]),
        ];
        assert_match("(1.3.6.1.4.1.1466.0=\\04\\02\\48\\69)", &binary, true);
        assert_match("(blob=\\ff\\41)", &binary, true);
        assert_match("(blob=\\ff\\61)", &binary, false);
        assert_match("(blob=\\ff*)", &binary, true);
    }

    #[test]
    fn extensible_match_cannot_be_evaluated() {
        let e = person();
        let err = eval("(|(objectClass=*)(cn:dn:caseExactMatch:=x))", &e).unwrap_err();
        assert_eq!(
            err,
            FilterEvalError::ExtensibleMatchUnsupported {
                component: "cn:dn:caseExactMatch:=".into()
            }
        );
        assert!(err.to_string().contains("cn:dn:caseExactMatch:="));
        assert!(eval("(!(:1.2.3:=x))", &e).is_err());
    }
}
