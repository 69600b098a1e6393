//! What the SQL backends' tests share (feature `testing`): a test binary (`harness = false`)
//! that is its own child process, the runtimes both sides run on, and a subscriber and a
//! metrics recorder to read the spans, events and metrics a run emitted.

use std::future::Future;

/// A test of a [`main_or_child`] binary: its name and body.
pub type Trial = (&'static str, fn());

/// The [`Trial`]s named, in order: `trials![a, b]` is `vec![("a", a), ("b", b)]`.
#[macro_export]
macro_rules! trials {
    ($($test:ident),* $(,)?) => {
        vec![$((stringify!($test), $test as fn())),*]
    };
}

/// The `main` of a test binary that is its own child: with the environment variable
/// `role_var` set, this process plays that role (`child(role)`); without, it runs `tests`
/// one at a time unless asked otherwise (they start processes and count what they do), and
/// exits with their outcome.
pub fn main_or_child(role_var: &str, child: fn(&str), tests: Vec<Trial>) {
    if let Ok(role) = std::env::var(role_var) {
        child(&role);
        return;
    }
    let mut args = libtest_mimic::Arguments::from_args();
    args.test_threads.get_or_insert(1);
    let trials = tests
        .into_iter()
        .map(|(name, test)| {
            libtest_mimic::Trial::test(name, move || {
                test();
                Ok(())
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

/// Runs `f` to completion on a new current-thread runtime.
pub fn block_on<F: Future>(f: F) -> F::Output {
    runtime().block_on(f)
}

/// Runs `f` to completion on a new current-thread runtime, inside a `LocalSet` (a child's
/// tasks may be `!Send`).
pub fn block_on_local<F: Future>(f: F) -> F::Output {
    tokio::task::LocalSet::new().block_on(&runtime(), f)
}

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("cannot start a tokio runtime for a test: {e}"),
    }
}

/// The backend's error `E` inside a store error; a test failure (a panic) if it is another.
pub fn store_error<E: std::error::Error + 'static>(e: &state_core::Error) -> &E {
    match e {
        state_core::Error::Store { source, .. } => match source.downcast_ref::<E>() {
            Some(inner) => inner,
            None => panic!("not a {}: {e}", std::any::type_name::<E>()),
        },
        other => panic!("expected a store error, got {other:?}"),
    }
}

/// One write of a child process counting on a shared counter: an increment, or with `update`
/// a read-modify-write of the same counter (so a run mixes both commit paths). Returns the
/// value the store acknowledged.
pub async fn count_once(h: &state_core::SlotHandle<u64>, update: bool) -> u64 {
    let written = if update {
        h.update(|v| Ok(Some(v.copied().unwrap_or(0) + 1))).await
    } else {
        h.increment(1).await.map(Some)
    };
    match written {
        Ok(Some(v)) => v,
        Ok(None) => panic!("an update that wrote a value acknowledged none"),
        Err(e) => panic!("a write of the counter failed: {e}"),
    }
}

/// Takes the next `n` items of a watch of a counter (each within 30 s: a stall fails the
/// test) and checks that they are every version from 1 to `n`, once each, in order.
pub async fn expect_every_version(
    watch: &mut futures::stream::BoxStream<'static, state_core::Result<(u64, Option<u64>)>>,
    n: u64,
) {
    use futures::StreamExt;
    let mut seen = Vec::new();
    while seen.len() < n as usize {
        let next = tokio::time::timeout(std::time::Duration::from_secs(30), watch.next()).await;
        match next {
            Ok(Some(Ok(change))) => seen.push(change),
            Ok(other) => panic!("the watch ended or failed after {seen:?}: {other:?}"),
            Err(_) => panic!(
                "the watch stalled after {} changes: {:?}",
                seen.len(),
                seen.last()
            ),
        }
    }
    let want: Vec<(u64, Option<u64>)> = (1..=n).map(|v| (v, Some(v))).collect();
    assert_eq!(seen, want, "every version, in order, once");
}

/// Runs `tasks` tokio tasks that each increment `h` by one `each` times, and waits for all
/// (a failed write fails the test).
pub async fn increment_concurrently(h: &state_core::SlotHandle<u64>, tasks: usize, each: usize) {
    let running: Vec<_> = (0..tasks)
        .map(|_| {
            let h = h.clone();
            tokio::spawn(async move {
                for _ in 0..each {
                    if let Err(e) = h.increment(1).await {
                        panic!("an increment failed: {e}");
                    }
                }
            })
        })
        .collect();
    for task in running {
        if let Err(e) = task.await {
            panic!("an incrementing task failed: {e}");
        }
    }
}

/// A read of the change log after `after` is told that the retention removed the changes
/// through `through`.
pub async fn expect_trimmed(store: &dyn state_core::Store, after: u64, through: u64) {
    let filter = state_core::ChangeFilter::all();
    match store.read_changes(after, &filter, 10).await {
        Err(state_core::Error::ChangesTrimmed {
            after: a,
            trimmed_through,
        }) if a == after && trimmed_through == through => {}
        other => panic!("expected ChangesTrimmed after {after} through {through}, got {other:?}"),
    }
}

/// One metric a run recorded ([`with_metrics`]): name, labels, value.
#[derive(Debug)]
pub struct Metric {
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Its value.
    pub value: metrics_util::debugging::DebugValue,
}

impl Metric {
    /// A counter's count, a histogram's number of observations, a gauge's value.
    pub fn count(&self) -> u64 {
        use metrics_util::debugging::DebugValue;
        match &self.value {
            DebugValue::Counter(n) => *n,
            DebugValue::Histogram(v) => v.len() as u64,
            DebugValue::Gauge(g) => g.into_inner() as u64,
        }
    }
}

/// Runs `work` on a current-thread runtime with a debugging recorder installed for this
/// thread: what it returned and every metric recorded (read once: a snapshot drains what it
/// read).
pub fn with_metrics<T>(work: impl Future<Output = T>) -> (T, Vec<Metric>) {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let out = metrics::with_local_recorder(&recorder, || runtime.block_on(work));
    drop(runtime);
    let recorded = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            Metric {
                name: key.name().to_owned(),
                labels: key
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect(),
                value,
            }
        })
        .collect();
    (out, recorded)
}

/// The metric `name` with (at least) these labels.
pub fn metric<'a>(
    recorded: &'a [Metric],
    name: &str,
    labels: &[(&str, &str)],
) -> Option<&'a Metric> {
    recorded.iter().find(|m| {
        m.name == name
            && labels
                .iter()
                .all(|(k, v)| m.labels.get(*k).map(String::as_str) == Some(*v))
    })
}

/// A span or an event as [`observe`]'s subscriber saw it: its fields as text (a span's with
/// those recorded on it later; an event's message among them as `message`).
#[derive(Clone, Debug)]
pub struct Seen {
    /// A span (else an event).
    pub span: bool,
    /// The span's name, or the event's message.
    pub name: String,
    /// Its target (`state` for the library's).
    pub target: String,
    /// Its level.
    pub level: tracing::Level,
    /// Every field, formatted.
    pub fields: std::collections::BTreeMap<String, String>,
}

impl Seen {
    /// The field `name`, formatted.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

/// The spans named `name`.
pub fn spans<'a>(seen: &'a [Seen], name: &str) -> Vec<&'a Seen> {
    seen.iter().filter(|s| s.span && s.name == name).collect()
}

/// The events whose message is `message`.
pub fn events<'a>(seen: &'a [Seen], message: &str) -> Vec<&'a Seen> {
    seen.iter()
        .filter(|s| !s.span && s.name == message)
        .collect()
}

/// Runs `work` as [`with_metrics`] does, with a subscriber capturing every span and event
/// (at TRACE) installed for this thread: what it returned, what was seen, what was recorded.
pub fn observe<T>(work: impl Future<Output = T>) -> (T, Vec<Seen>, Vec<Metric>) {
    use tracing_subscriber::layer::SubscriberExt;
    let capture = capture::Capture::default();
    let subscriber = tracing_subscriber::registry::Registry::default().with(capture.clone());
    let (out, recorded) = tracing::subscriber::with_default(subscriber, || with_metrics(work));
    (out, capture.seen(), recorded)
}

/// The capturing layer of [`observe`].
mod capture {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex, PoisonError};

    use tracing::field::{Field, Visit};
    use tracing::{Subscriber, span};
    use tracing_subscriber::layer::{Context, Layer};
    use tracing_subscriber::registry::LookupSpan;

    use super::Seen;

    #[derive(Default)]
    struct Fields(BTreeMap<String, String>);

    impl Visit for Fields {
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.insert(field.name().to_owned(), value.to_owned());
        }

        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.insert(field.name().to_owned(), format!("{value:?}"));
        }
    }

    /// Everything seen, and where each span is in it (to add fields recorded later).
    #[derive(Clone, Default)]
    pub(super) struct Capture(Arc<Mutex<Seeing>>);

    #[derive(Default)]
    struct Seeing {
        seen: Vec<Seen>,
        /// Each span's index in `seen`.
        spans: BTreeMap<u64, usize>,
    }

    impl Capture {
        pub(super) fn seen(&self) -> Vec<Seen> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .seen
                .clone()
        }

        fn push(&self, seen: Seen, id: Option<&span::Id>) {
            let mut all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            all.seen.push(seen);
            if let Some(id) = id {
                let at = all.seen.len() - 1;
                all.spans.insert(id.into_u64(), at);
            }
        }
    }

    impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
        fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, _: Context<'_, S>) {
            let mut fields = Fields::default();
            attrs.record(&mut fields);
            let meta = attrs.metadata();
            let seen = Seen {
                span: true,
                name: meta.name().to_owned(),
                target: meta.target().to_owned(),
                level: *meta.level(),
                fields: fields.0,
            };
            self.push(seen, Some(id));
        }

        fn on_record(&self, id: &span::Id, values: &span::Record<'_>, _: Context<'_, S>) {
            let mut fields = Fields::default();
            values.record(&mut fields);
            let mut all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(&at) = all.spans.get(&id.into_u64()) {
                all.seen[at].fields.extend(fields.0);
            }
        }

        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            let mut fields = Fields::default();
            event.record(&mut fields);
            let meta = event.metadata();
            let seen = Seen {
                span: false,
                name: fields.0.get("message").cloned().unwrap_or_default(),
                target: meta.target().to_owned(),
                level: *meta.level(),
                fields: fields.0,
            };
            self.push(seen, None);
        }
    }
}
