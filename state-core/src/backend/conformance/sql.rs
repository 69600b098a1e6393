//! Rules only a SQL backend can be asked, called from its own tests: rows damaged outside
//! the store, and versions held to a signed 64-bit column.

#[allow(unused_imports)]
use super::prelude::*;

/// The scope of [`assert_repairs_keep_version_and_expiry`]'s slots.
pub const REPAIR_SCOPE: &str = "repair";

/// The namespace of [`assert_repairs_keep_version_and_expiry`]'s slots: `live` and `expired`.
pub const REPAIR_NAMESPACE: &str = "Repair";

/// For backends whose rows can be damaged outside the store (SQL files and servers): a
/// whole-value write (`set_raw`) over a row whose value is unreadable is one version above it
/// and, with the default [`Ttl::Keep`], keeps the row's expiry, as it would over a readable
/// value; a row whose expiry has passed has none to keep.
///
/// Writes two versions with a one-hour TTL to the slots `live` and `expired` of namespace
/// [`REPAIR_NAMESPACE`] in `Scope::execution(REPAIR_SCOPE)`, then calls `break_rows`, which
/// must make both rows' values [`UNREADABLE_VALUE`] and set `expired`'s expiry to 1 (ms
/// after the epoch). Reading `live` then fails with a backend error `E` whose source is a
/// [`RowError`](crate::backend::rows::RowError) naming the row's version, expiry and stored text (what
/// a repair needs). A CAS write at the wrong version over the unreadable value is a conflict,
/// even with an op that needs the value after it in the batch. Panics with what broke.
pub async fn assert_repairs_keep_version_and_expiry<E, F, Fut>(store: Arc<dyn Store>, break_rows: F)
where
    E: std::error::Error + 'static,
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    let engine = Engine::with_config(store.clone(), EngineConfig::default());
    let scope = Scope::execution(REPAIR_SCOPE).expect("a valid scope id");
    let slot = |key: &str| Slot::new(scope.clone(), REPAIR_NAMESPACE, key).expect("a valid slot");
    let slots = [slot("live"), slot("expired")];
    let hour = Ttl::For(Duration::from_secs(3600));
    for s in &slots {
        let h = engine.handle::<u32>(s.clone()).with_ttl(hour);
        h.set(1).await.expect("a first write");
        h.set(2).await.expect("a second write");
    }
    let expiry = store.load_many(&slots).await.expect("a read")[0]
        .expires_at
        .expect("a TTL write sets an expiry");
    let fine = Slot::new(scope.clone(), "Fine", "k").expect("a valid slot");
    engine
        .handle::<u32>(fine.clone())
        .set(9)
        .await
        .expect("a readable slot next to them");
    break_rows().await;
    assert_scope_rows_read_past_unreadable_ones(&*store, &scope, &fine, &slots).await;
    let error = engine
        .handle::<u32>(slots[0].clone())
        .get()
        .await
        .expect_err("reading an unreadable value fails");
    assert_row_error::<E>(&error, 2, Some(expiry));
    // A batch whose first write to the slot replaces the value but conflicts is refused as a
    // conflict: the increment after it is not evaluated (on nothing, or on a placeholder).
    let refused = store
        .commit(Batch {
            writes: vec![
                Write::cas(slots[0].clone(), 99, Some(json!(5))),
                Write::apply(slots[0].clone(), vec![inc(1)]),
            ],
            max_value_bytes: crate::DEFAULT_MAX_VALUE_BYTES,
        })
        .await;
    match refused {
        Ok(CommitOutcome::Conflict(c)) => assert_eq!(
            (c.len(), c[0].expected, c[0].actual),
            (1, 99, 2),
            "the conflict names the unreadable row's version"
        ),
        other => panic!("a conflicting CAS over an unreadable value: {other:?}"),
    }
    for s in &slots {
        let v = engine
            .handle::<u32>(s.clone())
            .set_raw(json!(7))
            .await
            .unwrap_or_else(|e| panic!("set_raw over {s}'s unreadable value: {e}"));
        assert_eq!(v, 3, "{s}: one version above the unreadable row");
    }
    let after = store
        .load_many(&slots)
        .await
        .expect("a read after the repair");
    assert_eq!(
        (
            after[0].value.clone(),
            after[0].version,
            after[0].expires_at
        ),
        (Some(json!(7)), 3, Some(expiry)),
        "Ttl::Keep keeps a live unreadable row's expiry"
    );
    assert_eq!(
        (
            after[1].value.clone(),
            after[1].version,
            after[1].expires_at
        ),
        (Some(json!(7)), 3, None),
        "an expired unreadable row has no expiry to keep"
    );
}

/// The text [`assert_repairs_keep_version_and_expiry`]'s `break_rows` stores as the values.
pub const UNREADABLE_VALUE: &str = "{not json";

/// `error` is a store error of type `E` whose source is a [`RowError`](crate::backend::rows::RowError)
/// naming the readable `version` and `expires_at` and the stored text [`UNREADABLE_VALUE`].
fn assert_row_error<E: std::error::Error + 'static>(
    error: &Error,
    version: u64,
    expires_at: Option<Timestamp>,
) {
    let Error::Store { source, .. } = error else {
        panic!("an unreadable value is a store error: {error:?}");
    };
    let Some(backend) = source.downcast_ref::<E>() else {
        panic!("not a {}: {error:?}", std::any::type_name::<E>());
    };
    let row = std::error::Error::source(backend)
        .and_then(|s| s.downcast_ref::<crate::backend::rows::RowError>());
    let Some(row) = row else {
        panic!("the backend's error has the row's error as its source: {error:?}");
    };
    assert_eq!(
        (row.version, row.expires_at, row.raw.as_deref()),
        (Some(version), Some(expires_at), Some(UNREADABLE_VALUE)),
        "the error carries the readable version, expiry and stored text: {error:?}"
    );
}

/// [`Store::load_rows`] over a scope whose `broken` rows are unreadable: `fine` still
/// reads, and each broken row is its own error naming its slot (what an export reports).
async fn assert_scope_rows_read_past_unreadable_ones(
    store: &dyn Store,
    scope: &Scope,
    fine: &Slot,
    broken: &[Slot],
) {
    let rows = store
        .load_rows(Some(scope))
        .await
        .expect("a scope with unreadable rows still reads row by row");
    let whole = store
        .load_rows(None)
        .await
        .expect("the whole store reads row by row");
    assert_eq!(
        format!("{rows:?}"),
        format!("{whole:?}"),
        "the store holds this scope alone: both reads return its rows"
    );
    let mut readable = Vec::new();
    let mut named = Vec::new();
    for row in rows {
        match row {
            Ok((slot, record)) => readable.push((
                slot.namespace().to_owned(),
                slot.key().to_owned(),
                record.value,
            )),
            Err(Error::Store { slot: Some(s), .. }) => named.push(s),
            Err(other) => panic!("an unreadable row's error names no slot: {other:?}"),
        }
    }
    assert_eq!(
        readable,
        [(
            fine.namespace().to_owned(),
            fine.key().to_owned(),
            Some(json!(9))
        )],
        "the readable row comes back"
    );
    named.sort();
    let mut expected = broken.to_vec();
    expected.sort();
    assert_eq!(named, expected, "each unreadable row is named");
}

/// For SQL backends (signed 64-bit version columns): versions stop at
/// [`MAX_VERSION`](crate::backend::rows::MAX_VERSION), one below the column's largest value, so a clear
/// (every live slot one version up) still fits. Restores a slot just below it, writes up to it,
/// checks that the next write is refused, with the backend's version-range error `E`
/// ([`LoadError::version_range`](crate::backend::rows::LoadError::version_range)), and changes nothing,
/// and that a clear still works. Panics with what broke.
pub async fn assert_versions_stop_where_a_clear_still_fits<E: crate::backend::rows::LoadError>(
    store: Arc<dyn Store>,
) {
    use crate::backend::rows::MAX_VERSION;
    let scope = Scope::execution("top").expect("a valid scope id");
    let slot = Slot::new(scope.clone(), "Top", "n").expect("a valid slot");
    let record = crate::Record {
        value: Some(json!(1)),
        version: MAX_VERSION - 1,
        expires_at: None,
    };
    store
        .restore(crate::Restore::new(vec![(slot.clone(), record)]))
        .await
        .expect("a restore just below the top");
    let engine = Engine::with_config(store.clone(), EngineConfig::default());
    let h = engine.handle::<u64>(slot.clone());
    h.increment(1).await.expect("a write up to the top");
    let refused = h
        .increment(1)
        .await
        .expect_err("a write above the top is refused");
    match &refused {
        Error::Store { source, .. } if source.is::<E>() => assert_eq!(
            source.to_string(),
            E::version_range(MAX_VERSION + 1).to_string(),
            "the refusal names the version"
        ),
        other => panic!("a version above the top is the backend's range error: {other:?}"),
    }
    let at = store.load(&slot).await.expect("a read");
    assert_eq!(
        (at.value, at.version),
        (Some(json!(2)), MAX_VERSION),
        "the refused write changed nothing"
    );
    let cleared = engine
        .scope(scope)
        .clear()
        .await
        .expect("a clear at the top");
    assert_eq!(cleared, 1);
    let at = store.load(&slot).await.expect("a read after the clear");
    assert_eq!(
        (at.value, at.version),
        (None, MAX_VERSION + 1),
        "the clear's tombstone is one version up"
    );
}
