//! Identity: validation of every part, and no collisions between different slots.

use state_core::{Error, IdPart, MAX_ID_BYTES, MAX_NAME_BYTES, Scope, ScopeKind, Slot};

use crate::common::exec;

fn invalid(r: Result<impl std::fmt::Debug, Error>) -> (IdPart, String) {
    match r {
        Err(Error::InvalidId { part, reason, .. }) => (part, reason),
        other => panic!("expected InvalidId, got {other:?}"),
    }
}

#[test]
fn bad_scope_ids_are_rejected() {
    assert_eq!(invalid(Scope::execution("")).0, IdPart::ScopeId);
    assert!(invalid(Scope::execution("a\0b")).1.contains("NUL"));
    assert!(Scope::execution("x".repeat(MAX_ID_BYTES)).is_ok());
    assert!(
        invalid(Scope::execution("x".repeat(MAX_ID_BYTES + 1)))
            .1
            .contains("1025 bytes")
    );
    assert!(invalid(Scope::user("app", "")).0 == IdPart::ScopeId);
    assert!(invalid(Scope::object("", "key")).0 == IdPart::ScopeId);
    // Part counts per kind.
    assert!(
        invalid(Scope::new(ScopeKind::User, "app", None::<String>))
            .1
            .contains("second id part")
    );
    assert!(
        invalid(Scope::new(ScopeKind::App, "app", Some("x")))
            .1
            .contains("one id part")
    );
    assert_eq!(invalid("session".parse::<ScopeKind>()).0, IdPart::ScopeKind);
    assert_eq!("user".parse::<ScopeKind>().unwrap(), ScopeKind::User);
}

#[test]
fn bad_namespaces_and_keys_are_rejected() {
    let s = exec("e");
    assert_eq!(invalid(Slot::new(s.clone(), "", "k")).0, IdPart::Namespace);
    assert_eq!(invalid(Slot::new(s.clone(), "ns", "")).0, IdPart::Key);
    assert_eq!(invalid(Slot::new(s.clone(), "ns", "a\0")).0, IdPart::Key);
    assert!(Slot::new(s.clone(), "ns", "k".repeat(MAX_NAME_BYTES)).is_ok());
    assert_eq!(
        invalid(Slot::new(s.clone(), "n".repeat(MAX_NAME_BYTES + 1), "k")).0,
        IdPart::Namespace
    );
    // Multi-byte characters: the limit is in bytes.
    assert!(Slot::new(s, "ns", "é".repeat(MAX_NAME_BYTES / 2 + 1)).is_err());
}

#[test]
fn deserialized_ids_are_validated_too() {
    let bad = r#"{"scope":{"kind":"execution","id":""},"namespace":"n","key":"k"}"#;
    assert!(serde_json::from_str::<Slot>(bad).is_err());
    let good = Slot::new(Scope::user("a", "b").unwrap(), "n", "k").unwrap();
    let json = serde_json::to_string(&good).unwrap();
    assert_eq!(serde_json::from_str::<Slot>(&json).unwrap(), good);
}

#[test]
fn errors_name_the_slot() {
    let slot = Slot::new(Scope::user("shop", "alice").unwrap(), "Cart", "items").unwrap();
    let e = Error::Conflict {
        slot: slot.clone(),
        attempts: 11,
    };
    let msg = e.to_string();
    assert!(
        msg.contains(r#"user("shop", "alice") "Cart"/"items""#),
        "{msg}"
    );
    assert!(msg.contains("11 attempt(s)"), "{msg}");
    assert_eq!(e.slot(), Some(&slot));
}
