//! What the SQL backends' tests share (feature `testing`): a test binary (`harness = false`)
//! that is its own child process, the runtimes both sides run on, and a metrics recorder
//! to read what a run recorded.

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
