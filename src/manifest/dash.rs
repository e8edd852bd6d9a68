//! DASH MPDs (ISO/IEC 23009-1): the token goes into the URIs of `BaseURL`,
//! `Location` and `PatchLocation` text and of the segment attributes
//! (`SegmentTemplate@media`, `@initialization`, `@index`, `SegmentURL@media`,
//! `@index`, `Initialization@sourceURL`, `RepresentationIndex@sourceURL`).
//!
//! A relative URI in an MPD is resolved against the `BaseURL` chain, not the
//! MPD's own URL, so whether it stays on this host depends on the bases in
//! effect. The rewrite therefore has two steps: the scan records each
//! candidate rewrite and each element's own `BaseURL`s, then the bases are
//! resolved down the tree and only the rewrites whose URIs resolve to this
//! host are applied. A segment attribute is inherited by the
//! representations below its element, each resolving it against its own
//! base, so it is kept only when no base anywhere in its container's
//! subtree leaves this host. When a level lists several `BaseURL`s (the
//! player picks one), any one leaving this host counts; a `BaseURL` holding
//! an element cannot be read and counts as leaving. A relative `Location`
//! or `PatchLocation` is taken against the MPD level's base.
//!
//! Attribute values and text are read with references decoded and written
//! back escaped (`&` as `&amp;`); everything else is copied byte for byte.

use std::borrow::Cow;
use std::ops::Range;

use super::Unchanged;
use super::uri::{Insertion, Place, Propagation, Separator, split_whitespace};
use super::xml::{self, Mode, Scanner, Token};

const BOM: &str = "\u{feff}";

/// What an element is to the rewrite, by its local name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Its text is a URI: `BaseURL` (`base`), `Location`, `PatchLocation`.
    UriText {
        base: bool,
    },
    /// A segment description element, with the attributes holding a URI
    /// (or a URI template). Its URIs belong to the nearest enclosing
    /// element that is not one (the container: `Period`, `AdaptationSet`,
    /// `Representation`, ...).
    SegmentInfo(&'static [&'static str]),
    Other,
}

impl Role {
    fn of(local: &str) -> Role {
        match local {
            "BaseURL" => Role::UriText { base: true },
            "Location" | "PatchLocation" => Role::UriText { base: false },
            "SegmentTemplate" => Role::SegmentInfo(&["media", "initialization", "index"]),
            "SegmentURL" => Role::SegmentInfo(&["media", "index"]),
            "Initialization" | "RepresentationIndex" => Role::SegmentInfo(&["sourceURL"]),
            "SegmentBase" | "SegmentList" | "SegmentTimeline" | "BitstreamSwitching" => {
                Role::SegmentInfo(&[])
            }
            _ => Role::Other,
        }
    }
}

struct Element {
    parent: Option<usize>,
    segment_info: bool,
    bases: Bases,
}

/// What the element's own `BaseURL` children are.
#[derive(Debug, Default, Clone, Copy)]
struct Bases {
    relative: bool,
    this_host: bool,
    elsewhere: bool,
}

/// A rewrite found by the scan, applied if the URI's base allows.
struct Edit {
    change: Change,
    reach: Reach,
}

enum Change {
    /// The token goes in at this byte of the document: the value as
    /// written is the value as read (no reference, no whitespace to
    /// normalise), so it needs no escaping again. Most URIs are like this.
    Insert(usize, Separator),
    /// This range of the document becomes this range of the arena (the
    /// whole value, decoded, with the token, escaped).
    Replace(Range<usize>, Range<usize>),
}

impl Change {
    fn start(&self) -> usize {
        match self {
            Change::Insert(at, _) => *at,
            Change::Replace(range, _) => range.start,
        }
    }
}

/// What decides whether a rewritten URI stays on this host.
#[derive(Debug, Clone, Copy)]
enum Reach {
    /// It names this host.
    Absolute,
    /// Relative to the base of this element.
    Base(usize),
    /// Relative to the base this element inherits (a `BaseURL` of it
    /// resolves against its parent's base, not against its siblings).
    Inherited(usize),
    /// Relative to the base of this container and of every element below it.
    Subtree(usize),
}

/// The text of an open `BaseURL`, `Location` or `PatchLocation`.
struct Content {
    element: usize,
    is_base: bool,
    start: usize,
    decoded: String,
}

/// Rewrites an MPD; its root element must be `MPD` (any prefix).
pub(super) fn rewrite(text: &str, propagation: &Propagation<'_>) -> Result<String, Unchanged> {
    let start = if text.starts_with(BOM) { BOM.len() } else { 0 };
    let mut scanner = Scanner::new(text, start);
    let mut elements: Vec<Element> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    let mut edits: Vec<Edit> = Vec::new();
    let mut arena = String::new();
    let mut content: Option<Content> = None;

    while let Some((token, range)) = scanner.next_token()? {
        match token {
            Token::Start {
                name,
                attributes,
                attributes_at,
                empty,
            } => {
                let local = match name.bytes().rposition(|b| b == b':') {
                    Some(colon) => &name[colon + 1..],
                    None => name,
                };
                if elements.is_empty() && local != "MPD" {
                    return Err(Unchanged::NotAnMpd);
                }
                // An element inside a URI text: then it is no URI; a base
                // that cannot be read may lead anywhere.
                if let Some(content) = content.take()
                    && content.is_base
                {
                    let parent = elements[content.element].parent.ok_or(Unchanged::BadXml)?;
                    elements[parent].bases.elsewhere = true;
                }
                let role = Role::of(local);
                let index = elements.len();
                let parent = open.last().copied();
                elements.push(Element {
                    parent,
                    segment_info: matches!(role, Role::SegmentInfo(_)),
                    bases: Bases::default(),
                });
                if let Role::SegmentInfo(wanted) = role
                    && !wanted.is_empty()
                {
                    let container = container(&elements, index);
                    for attribute in xml::attributes(attributes) {
                        if !wanted.contains(&attribute.name) {
                            continue;
                        }
                        let at = attributes_at + attribute.value_at;
                        let decoded = xml::decode(attribute.value, Mode::Attribute)?;
                        let (change, relative) = match decoded {
                            Cow::Borrowed(value) => {
                                let (lead, uri, _) = split_whitespace(value);
                                let Some(insertion) = propagation.insertion(uri) else {
                                    continue;
                                };
                                let at = at + lead.len() + insertion.at;
                                (Change::Insert(at, insertion.separator), insertion.relative)
                            }
                            Cow::Owned(value) => {
                                let Some((replacement, relative)) =
                                    replacement(&mut arena, &value, propagation, true)
                                else {
                                    continue;
                                };
                                let range = at..at + attribute.value.len();
                                (Change::Replace(range, replacement), relative)
                            }
                        };
                        edits.push(Edit {
                            change,
                            reach: if relative {
                                Reach::Subtree(container)
                            } else {
                                Reach::Absolute
                            },
                        });
                    }
                }
                if !empty {
                    open.push(index);
                    if let Role::UriText { base } = role {
                        content = Some(Content {
                            element: index,
                            is_base: base,
                            start: range.end,
                            decoded: String::new(),
                        });
                    }
                } else if role == (Role::UriText { base: true }) {
                    // `<BaseURL/>`: the empty reference, the parent's own base.
                    if let Some(parent) = parent {
                        elements[parent].bases.relative = true;
                    }
                }
            }
            Token::Text(raw) => {
                if let Some(content) = &mut content {
                    content.decoded.push_str(&xml::decode(raw, Mode::Text)?);
                }
            }
            Token::CData(raw) => {
                if let Some(content) = &mut content {
                    content.decoded.push_str(&xml::decode(raw, Mode::CData)?);
                }
            }
            Token::Other => {}
            Token::End { .. } => {
                let index = open.pop().ok_or(Unchanged::BadXml)?;
                if let Some(content) = content.take_if(|c| c.element == index) {
                    let parent = elements[index].parent.ok_or(Unchanged::BadXml)?;
                    let place = finish_content(
                        &mut arena,
                        &mut edits,
                        &content,
                        parent,
                        range.start,
                        propagation,
                    );
                    if content.is_base {
                        let bases = &mut elements[parent].bases;
                        match place {
                            Place::Relative => bases.relative = true,
                            Place::ThisHost => bases.this_host = true,
                            Place::Elsewhere => bases.elsewhere = true,
                        }
                    }
                }
            }
        }
    }
    let resolved = resolve(&elements);
    Ok(apply(text, &arena, &edits, &resolved, propagation))
}

/// The nearest element above `index` that is not a segment description.
fn container(elements: &[Element], index: usize) -> usize {
    let mut at = elements[index].parent;
    while let Some(i) = at {
        if !elements[i].segment_info {
            return i;
        }
        at = elements[i].parent;
    }
    0
}

/// Records the rewrite of a finished URI text ending at byte `end`, whose
/// element's parent is `parent`, and returns where the URI leads.
fn finish_content(
    arena: &mut String,
    edits: &mut Vec<Edit>,
    content: &Content,
    parent: usize,
    end: usize,
    propagation: &Propagation<'_>,
) -> Place {
    if let Some((replacement, relative)) = replacement(arena, &content.decoded, propagation, false)
    {
        edits.push(Edit {
            change: Change::Replace(content.start..end, replacement),
            reach: match (relative, content.is_base) {
                (false, _) => Reach::Absolute,
                (true, true) => Reach::Inherited(parent),
                (true, false) => Reach::Base(parent),
            },
        });
    }
    propagation.place(split_whitespace(&content.decoded).1)
}

/// Writes the escaped new value of a decoded value (an attribute's or
/// text) to the arena when it gets the token: its range there, and whether
/// the URI is relative.
fn replacement(
    arena: &mut String,
    decoded: &str,
    propagation: &Propagation<'_>,
    attribute: bool,
) -> Option<(Range<usize>, bool)> {
    let (lead, uri, trail) = split_whitespace(decoded);
    let Insertion {
        at,
        separator,
        relative,
    } = propagation.insertion(uri)?;
    let start = arena.len();
    xml::push_escaped(arena, lead, attribute);
    xml::push_escaped(arena, &uri[..at], attribute);
    arena.push_str(propagation.addition(separator, true));
    xml::push_escaped(arena, &uri[at..], attribute);
    xml::push_escaped(arena, trail, attribute);
    Some((start..arena.len(), relative))
}

/// Per element, whether the base it inherits from its parent is on this
/// host (the MPD's own URL is), whether its base (its own `BaseURL`s
/// resolved) is, and whether the bases of it and of every element below it
/// are.
struct Resolved {
    inherited: Vec<bool>,
    base: Vec<bool>,
    subtree: Vec<bool>,
}

/// Resolves the bases down the tree (a parent comes before its children).
fn resolve(elements: &[Element]) -> Resolved {
    let mut inherited: Vec<bool> = Vec::with_capacity(elements.len());
    let mut base: Vec<bool> = Vec::with_capacity(elements.len());
    for element in elements {
        let from_parent = element.parent.is_none_or(|p| base[p]);
        inherited.push(from_parent);
        let Bases {
            relative,
            this_host,
            elsewhere,
        } = element.bases;
        base.push(match (relative, this_host, elsewhere) {
            (false, false, false) => from_parent,
            _ => !elsewhere && (from_parent || !relative),
        });
    }
    let mut subtree = base.clone();
    for (i, element) in elements.iter().enumerate().rev() {
        if let (false, Some(parent)) = (subtree[i], element.parent) {
            subtree[parent] = false;
        }
    }
    Resolved {
        inherited,
        base,
        subtree,
    }
}

/// The document with the edits whose URIs stay on this host applied.
fn apply(
    text: &str,
    arena: &str,
    edits: &[Edit],
    resolved: &Resolved,
    propagation: &Propagation<'_>,
) -> String {
    let kept = edits.iter().filter(|edit| match edit.reach {
        Reach::Absolute => true,
        Reach::Base(e) => resolved.base[e],
        Reach::Inherited(e) => resolved.inherited[e],
        Reach::Subtree(e) => resolved.subtree[e],
    });
    let inserted = edits.len() * propagation.addition(Separator::Ampersand, true).len();
    let mut out = String::with_capacity(text.len() + arena.len() + inserted);
    let mut copied = 0;
    for edit in kept {
        if edit.change.start() < copied {
            continue;
        }
        out.push_str(&text[copied..edit.change.start()]);
        copied = match &edit.change {
            Change::Insert(at, separator) => {
                out.push_str(propagation.addition(*separator, true));
                *at
            }
            Change::Replace(range, replacement) => {
                out.push_str(&arena[replacement.clone()]);
                range.end
            }
        };
    }
    out.push_str(&text[copied..]);
    out
}
