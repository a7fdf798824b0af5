//! One thread of a Legacy Import's own that maps batches (CPU only) while the run's task
//! writes the batch before.
//!
//! Not tokio's blocking pool: its threads come and go (one idle for ten seconds ends, the
//! next burst starts another), and each has its own allocator heap, which holds the pages
//! whose blocks other threads freed (the documents it made, written and dropped on the
//! run's task) until it next allocates or ends. Documents mapped on one thread that lives
//! as long as the run and maps every batch land in one heap that is always in use.

use std::sync::mpsc;

/// A job: runs on the thread, sends its result itself.
type Job = Box<dyn FnOnce() + Send>;

/// The mapping thread of one run. Jobs run one after another in the order given; dropping
/// this ends the thread once the jobs given have run (a stopped run gives none after).
pub(crate) struct MapThread {
    jobs: mpsc::Sender<Job>,
}

impl MapThread {
    /// Starts the thread, named `name`.
    pub(crate) fn start(name: &str) -> std::io::Result<Self> {
        let (jobs, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    // A panicking job drops its result's sender: its caller gets an error,
                    // and the thread goes on with the next.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            })?;
        Ok(Self { jobs })
    }

    /// Runs `work` on the thread after the jobs given before it; its result, or an error if
    /// it panicked or the thread has stopped.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> Mapping<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(work());
        });
        // A send fails only if the thread is gone; the job, dropped with its sender, tells
        // the caller so.
        let _ = self.jobs.send(job);
        Mapping(rx)
    }
}

/// The result of a job given to [`MapThread::run`], to await.
pub(crate) struct Mapping<T>(tokio::sync::oneshot::Receiver<anyhow::Result<T>>);

impl<T> std::future::Future for Mapping<T> {
    type Output = anyhow::Result<T>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx).map(|r| {
            r.unwrap_or_else(|_| {
                Err(anyhow::anyhow!(
                    "mapping stopped: the mapping job panicked or the run ended"
                ))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_in_order_on_one_thread_of_their_own() {
        let t = MapThread::start("heimdall-map-test").unwrap();
        let here = std::thread::current().id();
        let jobs: Vec<_> = (0..20)
            .map(|i| {
                t.run(move || {
                    let name = std::thread::current().name().map(str::to_string);
                    Ok((i, std::thread::current().id(), name))
                })
            })
            .collect();
        let mut threads = std::collections::HashSet::new();
        for (i, job) in jobs.into_iter().enumerate() {
            let (n, id, name) = job.await.unwrap();
            assert_eq!(n, i);
            assert_ne!(id, here);
            assert_eq!(name.as_deref(), Some("heimdall-map-test"));
            threads.insert(id);
        }
        assert_eq!(threads.len(), 1, "every job on the same thread");
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_and_the_next_runs() {
        let t = MapThread::start("heimdall-map-test").unwrap();
        let failed = t.run(|| -> anyhow::Result<u32> { panic!("a mapper bug") });
        let next = t.run(|| Ok(7u32));
        let err = failed.await.unwrap_err().to_string();
        assert!(err.contains("mapping stopped"), "{err}");
        assert_eq!(next.await.unwrap(), 7);
    }

    #[tokio::test]
    async fn an_error_of_the_job_is_returned_as_is() {
        let t = MapThread::start("heimdall-map-test").unwrap();
        let err = t
            .run(|| -> anyhow::Result<()> { anyhow::bail!("record 3: `messages` is a string") })
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "record 3: `messages` is a string");
    }

    #[tokio::test]
    async fn dropping_it_ends_the_thread_once_its_jobs_have_run() {
        let name = "hmap-drop-test";
        let on_a_thread_named = |name: &str| {
            // Other tests' threads end meanwhile: one gone between the listing and the read
            // of its name is not this one.
            std::fs::read_dir("/proc/self/task")
                .unwrap()
                .filter_map(Result::ok)
                .any(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|comm| comm.trim() == name)
                })
        };
        let t = MapThread::start(name).unwrap();
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let running = t.run(move || {
            started_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            Ok(1u8)
        });
        let queued = t.run(|| Ok(2u8));
        started_rx.recv().unwrap();
        assert!(on_a_thread_named(name));
        drop(t);
        go_tx.send(()).unwrap();
        assert_eq!(running.await.unwrap(), 1);
        assert_eq!(
            queued.await.unwrap(),
            2,
            "a job given before the drop still runs"
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while on_a_thread_named(name) {
            assert!(
                std::time::Instant::now() < deadline,
                "the thread did not end"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}
