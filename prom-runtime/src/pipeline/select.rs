//! Choosing which declared components a pipeline runs ([`super::Pipeline::only`]): a service
//! that shares a system spec with others runs its own consumers and leaves the rest alone.

use crate::error::{Error, Result};
use crate::system::System;
use std::borrow::Cow;
use std::collections::BTreeSet;

/// What a [`Component`] name refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum ComponentKind {
    /// A consumer (`consumers:` in the spec).
    Consumer,
    /// A changelog or transactional projector (`projectors:`).
    Projector,
    /// A changefeed (`changefeeds:`).
    Changefeed,
}

impl ComponentKind {
    fn noun(self) -> &'static str {
        match self {
            ComponentKind::Consumer => "consumer",
            ComponentKind::Projector => "projector",
            ComponentKind::Changefeed => "changefeed",
        }
    }
}

/// The name of a declared consumer, projector or changefeed, for [`super::Pipeline::only`].
/// Generated code has one constant per component (`consumers::HB_ANALYZERS`); a plain `&str`
/// names every kind of component with that name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Component {
    kind: Option<ComponentKind>,
    name: Cow<'static, str>,
}

impl Component {
    /// The consumer `name`.
    pub const fn consumer(name: &'static str) -> Component {
        Component { kind: Some(ComponentKind::Consumer), name: Cow::Borrowed(name) }
    }

    /// The projector `name`.
    pub const fn projector(name: &'static str) -> Component {
        Component { kind: Some(ComponentKind::Projector), name: Cow::Borrowed(name) }
    }

    /// The changefeed `name`.
    pub const fn changefeed(name: &'static str) -> Component {
        Component { kind: Some(ComponentKind::Changefeed), name: Cow::Borrowed(name) }
    }

    /// Its name in the spec.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its kind; `None` for a plain name (any kind).
    pub fn kind(&self) -> Option<ComponentKind> {
        self.kind
    }
}

impl From<&str> for Component {
    fn from(name: &str) -> Component {
        Component { kind: None, name: Cow::Owned(name.to_owned()) }
    }
}

impl From<String> for Component {
    fn from(name: String) -> Component {
        Component { kind: None, name: Cow::Owned(name) }
    }
}

impl From<&Component> for Component {
    fn from(component: &Component) -> Component {
        component.clone()
    }
}

/// The components a pipeline runs, by kind, each checked against the system.
#[derive(Debug, Clone, Default)]
pub(super) struct Selection {
    consumers: BTreeSet<String>,
    projectors: BTreeSet<String>,
    changefeeds: BTreeSet<String>,
}

impl Selection {
    /// Resolves `wanted` against `system`; a name that matches nothing (of its kind) is an error
    /// with the closest declared name and the list of them.
    pub(super) fn resolve(system: &System, wanted: impl IntoIterator<Item = Component>) -> Result<Selection> {
        let mut selection = Selection::default();
        let mut any = false;
        for component in wanted {
            any = true;
            let name = component.name();
            let kinds = match component.kind {
                Some(kind) => vec![kind],
                None => vec![ComponentKind::Consumer, ComponentKind::Projector, ComponentKind::Changefeed],
            };
            let mut found = false;
            for kind in kinds {
                let chosen = match kind {
                    ComponentKind::Consumer => &mut selection.consumers,
                    ComponentKind::Projector => &mut selection.projectors,
                    ComponentKind::Changefeed => &mut selection.changefeeds,
                };
                if names(system, kind).any(|declared| declared == name) {
                    chosen.insert(name.to_owned());
                    found = true;
                }
            }
            if !found {
                return Err(unknown(system, &component));
            }
        }
        if !any {
            return Err(Error::EmptySelection);
        }
        Ok(selection)
    }

    /// Whether consumer `name` runs.
    pub(super) fn has_consumer(&self, name: &str) -> bool {
        self.consumers.contains(name)
    }

    /// `system` with only the selected components (what the MongoDB tasks run).
    pub(super) fn restrict(&self, system: &System) -> System {
        let mut restricted = system.clone();
        restricted.consumers.retain(|c| self.consumers.contains(&c.name));
        restricted.projectors.retain(|p| self.projectors.contains(&p.name));
        restricted.changefeeds.retain(|c| self.changefeeds.contains(&c.name));
        restricted
    }
}

/// The declared names of one kind of component.
fn names(system: &System, kind: ComponentKind) -> Box<dyn Iterator<Item = &str> + '_> {
    match kind {
        ComponentKind::Consumer => Box::new(system.consumers.iter().map(|c| c.name.as_str())),
        ComponentKind::Projector => Box::new(system.projectors.iter().map(|p| p.name.as_str())),
        ComponentKind::Changefeed => Box::new(system.changefeeds.iter().map(|c| c.name.as_str())),
    }
}

/// "The spec declares no consumer `x`; did you mean `y`? Declared: ...".
fn unknown(system: &System, component: &Component) -> Error {
    let name = component.name();
    let what = component.kind.map_or("consumer, projector or changefeed", ComponentKind::noun);
    let kinds = [ComponentKind::Consumer, ComponentKind::Projector, ComponentKind::Changefeed];
    let candidates: Vec<&str> = match component.kind {
        Some(kind) => names(system, kind).collect(),
        None => kinds.iter().flat_map(|kind| names(system, *kind)).collect(),
    };
    let hint = prom_spec::suggest::closest(name, candidates.iter().copied()).map(str::to_owned);
    let list = |kind: ComponentKind| format!("{}s: {}", kind.noun(), super::name_list(names(system, kind)));
    Error::UnknownComponent {
        kind: what.to_owned(),
        name: name.to_owned(),
        hint,
        declared: Some(format!(
            "{}; {}; {}",
            list(ComponentKind::Consumer),
            list(ComponentKind::Projector),
            list(ComponentKind::Changefeed)
        )),
    }
}
