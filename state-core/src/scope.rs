//! Scopes, slots and the validation of every part of a slot's identity.
//!
//! A slot is `(scope, namespace, key)`; a scope is a [`ScopeKind`] plus an id of one or two
//! parts. Every part is kept as its own field (never `:`-joined), so two different slots can
//! never share a storage identity: `user("a:b", "c")` and `user("a", "b:c")` stay distinct.

use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IdPart};

/// Longest scope id part, in bytes.
pub const MAX_ID_BYTES: usize = 1024;
/// Longest namespace or key, in bytes.
pub const MAX_NAME_BYTES: usize = 256;

/// Where state lives and who shares it.
///
/// Variants are in alphabetical order, so every backend lists scopes in the same order
/// (SQL text order equals this enum's order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ScopeKind {
    /// A whole app (ADK `app:`). Id: the app name.
    App,
    /// One execution, shared with its children and concurrent branches; purged with it.
    /// Id: the (root) execution id.
    Execution,
    /// Any named scope with dynamic keys (Motia groups). Id: the group name.
    Group,
    /// One virtual-object key of one service (Restate). Id: service, then object key.
    Object,
    /// One user of one app (ADK `user:`). Id: app, then user id.
    User,
    /// Every run of one workflow type. Id: the workflow type.
    Workflow,
}

impl ScopeKind {
    /// Every kind, in listing order.
    pub const ALL: [ScopeKind; 6] = [
        ScopeKind::App,
        ScopeKind::Execution,
        ScopeKind::Group,
        ScopeKind::Object,
        ScopeKind::User,
        ScopeKind::Workflow,
    ];

    /// The lower-case name used in storage, the CLI and display (`"execution"`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            ScopeKind::Execution => "execution",
            ScopeKind::Workflow => "workflow",
            ScopeKind::Object => "object",
            ScopeKind::User => "user",
            ScopeKind::App => "app",
            ScopeKind::Group => "group",
        }
    }

    /// Whether ids of this kind have two parts (`object`: service + key, `user`: app + user).
    pub const fn has_two_parts(self) -> bool {
        matches!(self, ScopeKind::Object | ScopeKind::User)
    }
}

impl fmt::Display for ScopeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ScopeKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        ScopeKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| Error::InvalidId {
                part: IdPart::ScopeKind,
                value: truncate(s),
                reason: "is not one of app, execution, group, object, user, workflow".into(),
            })
    }
}

/// A validated scope: a kind and an id of one or two parts.
///
/// ```
/// use state_core::{Scope, ScopeKind};
/// let s = Scope::user("shop", "alice").unwrap();
/// assert_eq!(s.kind(), ScopeKind::User);
/// assert_eq!(s.parts(), ("shop", Some("alice")));
/// assert!(Scope::execution("").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "RawScope", into = "RawScope")]
pub struct Scope {
    kind: ScopeKind,
    id: String,
    sub: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScope {
    kind: ScopeKind,
    id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
}

impl TryFrom<RawScope> for Scope {
    type Error = Error;
    fn try_from(r: RawScope) -> Result<Self, Error> {
        Scope::new(r.kind, r.id, r.sub)
    }
}

impl From<Scope> for RawScope {
    fn from(s: Scope) -> Self {
        RawScope {
            kind: s.kind,
            id: s.id,
            sub: s.sub,
        }
    }
}

impl Scope {
    /// Builds a scope from its kind and parts, validating each part.
    ///
    /// `object` and `user` need both parts; every other kind takes exactly one.
    pub fn new(
        kind: ScopeKind,
        id: impl Into<String>,
        sub: Option<impl Into<String>>,
    ) -> Result<Self, Error> {
        let id = id.into();
        let sub = sub.map(Into::into);
        validate(IdPart::ScopeId, &id, MAX_ID_BYTES)?;
        match (&sub, kind.has_two_parts()) {
            (Some(s), true) => validate(IdPart::ScopeId, s, MAX_ID_BYTES)?,
            (None, false) => {}
            (None, true) => {
                return Err(Error::InvalidId {
                    part: IdPart::ScopeId,
                    value: truncate(&id),
                    reason: format!("a `{kind}` scope needs a second id part"),
                });
            }
            (Some(s), false) => {
                return Err(Error::InvalidId {
                    part: IdPart::ScopeId,
                    value: truncate(s),
                    reason: format!("a `{kind}` scope takes one id part, not two"),
                });
            }
        }
        Ok(Scope { kind, id, sub })
    }

    /// The scope of one execution (the root execution of a tree of children).
    pub fn execution(execution_id: impl Into<String>) -> Result<Self, Error> {
        Scope::new(ScopeKind::Execution, execution_id, None::<String>)
    }

    /// The scope shared by every run of one workflow type.
    pub fn workflow(workflow_type: impl Into<String>) -> Result<Self, Error> {
        Scope::new(ScopeKind::Workflow, workflow_type, None::<String>)
    }

    /// The scope of one virtual object: `service` plus object `key`.
    pub fn object(service: impl Into<String>, key: impl Into<String>) -> Result<Self, Error> {
        Scope::new(ScopeKind::Object, service, Some(key))
    }

    /// The scope of one `user` of one `app`.
    pub fn user(app: impl Into<String>, user: impl Into<String>) -> Result<Self, Error> {
        Scope::new(ScopeKind::User, app, Some(user))
    }

    /// The scope of a whole app.
    pub fn app(app: impl Into<String>) -> Result<Self, Error> {
        Scope::new(ScopeKind::App, app, None::<String>)
    }

    /// A named group with dynamic keys (rate limits, sessions, feature flags).
    pub fn group(name: impl Into<String>) -> Result<Self, Error> {
        Scope::new(ScopeKind::Group, name, None::<String>)
    }

    /// The scope's kind.
    pub fn kind(&self) -> ScopeKind {
        self.kind
    }

    /// The id parts: the first, and the second for `object` and `user` scopes.
    pub fn parts(&self) -> (&str, Option<&str>) {
        (&self.id, self.sub.as_deref())
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.sub {
            Some(sub) => write!(f, "{}({:?}, {:?})", self.kind, self.id, sub),
            None => write!(f, "{}({:?})", self.kind, self.id),
        }
    }
}

/// A namespace and key inside a scope (what key listing returns).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SlotKey {
    /// The namespace: a derived struct's name unless `#[state(namespace = "…")]` says otherwise.
    pub namespace: String,
    /// The key: a field name, `#[state(rename = "…")]`, or a collection entry's key.
    pub key: String,
}

/// A validated slot: `(scope, namespace, key)`. Cheap to clone (one `Arc`).
///
/// ```
/// use state_core::{Scope, Slot};
/// let a = Slot::new(Scope::user("a:b", "c").unwrap(), "ns", "k").unwrap();
/// let b = Slot::new(Scope::user("a", "b:c").unwrap(), "ns", "k").unwrap();
/// assert_ne!(a, b); // no `:`-joining: the parts stay apart
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Slot(Arc<SlotInner>);

struct SlotInner {
    scope: Scope,
    namespace: String,
    key: String,
    /// The identity's hash, computed once (committers hash a slot several times per commit).
    hash: u64,
}

impl SlotInner {
    fn identity(&self) -> (&Scope, &str, &str) {
        (&self.scope, &self.namespace, &self.key)
    }
}

impl PartialEq for SlotInner {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.identity() == other.identity()
    }
}

impl Eq for SlotInner {}

impl PartialOrd for SlotInner {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SlotInner {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.identity().cmp(&other.identity())
    }
}

/// Hashes the precomputed identity hash. That hash is keyed per process (a `RandomState`
/// made once), so crafted slot names cannot aim for collisions any more than in a `HashMap`.
impl Hash for Slot {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.hash);
    }
}

impl Slot {
    /// Builds a slot, validating namespace and key (non-empty, at most 256 bytes, no NUL).
    pub fn new(
        scope: Scope,
        namespace: impl Into<String>,
        key: impl Into<String>,
    ) -> Result<Self, Error> {
        let namespace = namespace.into();
        let key = key.into();
        validate(IdPart::Namespace, &namespace, MAX_NAME_BYTES)?;
        validate(IdPart::Key, &key, MAX_NAME_BYTES)?;
        static KEYS: OnceLock<RandomState> = OnceLock::new();
        let hash = KEYS
            .get_or_init(RandomState::new)
            .hash_one((&scope, &namespace, &key));
        Ok(Slot(Arc::new(SlotInner {
            scope,
            namespace,
            key,
            hash,
        })))
    }

    /// The slot's scope.
    pub fn scope(&self) -> &Scope {
        &self.0.scope
    }

    /// The slot's namespace.
    pub fn namespace(&self) -> &str {
        &self.0.namespace
    }

    /// The slot's key.
    pub fn key(&self) -> &str {
        &self.0.key
    }

    /// Namespace and key as a [`SlotKey`].
    pub fn slot_key(&self) -> SlotKey {
        SlotKey {
            namespace: self.0.namespace.clone(),
            key: self.0.key.clone(),
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:?}/{:?}",
            self.0.scope, self.0.namespace, self.0.key
        )
    }
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Slot({self})")
    }
}

impl Serialize for Slot {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Slot", 3)?;
        st.serialize_field("scope", &self.0.scope)?;
        st.serialize_field("namespace", &self.0.namespace)?;
        st.serialize_field("key", &self.0.key)?;
        st.end()
    }
}

impl<'de> Deserialize<'de> for Slot {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            scope: Scope,
            namespace: String,
            key: String,
        }
        let r = Raw::deserialize(d)?;
        Slot::new(r.scope, r.namespace, r.key).map_err(serde::de::Error::custom)
    }
}

/// Checks one id part: non-empty, at most `max` bytes, no NUL.
pub(crate) fn validate(part: IdPart, value: &str, max: usize) -> Result<(), Error> {
    let reason = if value.is_empty() {
        "is empty".to_string()
    } else if value.len() > max {
        format!("is {} bytes long (at most {max})", value.len())
    } else if value.contains('\0') {
        "contains a NUL character".to_string()
    } else {
        return Ok(());
    };
    Err(Error::InvalidId {
        part,
        value: truncate(value),
        reason,
    })
}

/// A bounded copy of a bad value for an error message.
fn truncate(value: &str) -> String {
    const SHOWN: usize = 64;
    if value.len() <= SHOWN {
        return value.to_string();
    }
    let mut end = SHOWN;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &value[..end])
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashSet};

    use super::{Scope, Slot};

    #[test]
    fn slots_built_apart_are_one_key_in_hash_and_ordered_maps() {
        let make = |id: &str, key: &str| Slot::new(Scope::user(id, "c").unwrap(), "ns", key);
        let a = make("a", "k").unwrap();
        let same = make("a", "k").unwrap();
        let other_key = make("a", "j").unwrap();
        let other_scope = make("b", "k").unwrap();
        assert_eq!(a, same);
        assert_ne!(a, other_key);
        assert_ne!(a, other_scope);
        let hashed: HashSet<Slot> = [&a, &same, &other_key, &other_scope]
            .into_iter()
            .cloned()
            .collect();
        assert_eq!(hashed.len(), 3);
        assert!(hashed.contains(&make("b", "k").unwrap()));
        let ordered: Vec<Slot> = [&a, &same, &other_key, &other_scope]
            .into_iter()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(ordered, [other_key, a, other_scope]);
    }
}
