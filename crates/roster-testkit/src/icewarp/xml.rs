//! A small element tree read with quick-xml, and the writing helpers for responses. The emulator has its
//! own reader, not the connector's: a bug in one must not hide in both.

use quick_xml::Reader;
use quick_xml::escape::escape;
use quick_xml::events::Event;

/// One element: its name as written (the wire is case-sensitive for elements, case-insensitive for the
/// values we compare), attributes, children and the text directly inside it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first child with this name (element names compared without regard to case, like the server
    /// compares command names).
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children
            .iter()
            .filter(move |c| c.name.eq_ignore_ascii_case(name))
    }

    /// The trimmed text of a child, if it exists.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }
}

/// Parses a whole document; `Err` with a short reason for anything that is not one well-formed element.
pub fn parse(input: &str) -> Result<Element, String> {
    let mut reader = Reader::from_str(input);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = reader.read_event().map_err(|e| {
            format!(
                "not well-formed XML at byte {}: {e}",
                reader.buffer_position()
            )
        })?;
        match event {
            Event::Start(start) => {
                if root.is_some() {
                    return Err("more than one root element".into());
                }
                stack.push(element(&start)?);
            }
            Event::Empty(start) => {
                let el = element(&start)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None if root.is_none() => root = Some(el),
                    None => return Err("more than one root element".into()),
                }
            }
            Event::End(_) => {
                let Some(done) = stack.pop() else {
                    return Err("an end tag without a start tag".into());
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => root = Some(done),
                }
            }
            Event::Text(text) => {
                let text = text.unescape().map_err(|e| format!("bad text: {e}"))?;
                match stack.last_mut() {
                    Some(el) => el.text.push_str(&text),
                    None if text.trim().is_empty() => {}
                    None => return Err("text outside the root element".into()),
                }
            }
            Event::CData(data) => {
                let data = data.decode().map_err(|e| format!("bad CDATA: {e}"))?;
                if let Some(el) = stack.last_mut() {
                    el.text.push_str(&data);
                }
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err("the document ends inside an element".into());
    }
    root.ok_or_else(|| "no root element".into())
}

fn element(start: &quick_xml::events::BytesStart<'_>) -> Result<Element, String> {
    let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| format!("bad attribute: {e}"))?;
        let key = String::from_utf8_lossy(attr.key.as_ref()).into_owned();
        let value = attr
            .unescape_value()
            .map_err(|e| format!("bad attribute value: {e}"))?
            .into_owned();
        attrs.push((key, value));
    }
    Ok(Element {
        name,
        attrs,
        ..Default::default()
    })
}

/// `<name>text</name>`, escaped; `<name/>` for empty text.
pub fn leaf(name: &str, text: &str) -> String {
    if text.is_empty() {
        format!("<{name}/>")
    } else {
        format!("<{name}>{}</{name}>", escape(text))
    }
}

/// Escapes an attribute value or text.
pub fn esc(text: &str) -> String {
    escape(text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        let el = parse(r#"<?xml version="1.0"?><iq sid="a&amp;b"><query xmlns="admin:iq:rpc"><commandname>X</commandname><commandparams/></query></iq>"#).unwrap();
        assert_eq!(el.attr("sid"), Some("a&b"));
        assert_eq!(
            el.child("query").unwrap().child_text("commandname"),
            Some("X")
        );
        for bad in [
            "",
            "<iq>",
            "<iq></query>",
            "<a/><b/>",
            "text",
            "<iq><query></iq>",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
