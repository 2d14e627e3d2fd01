//! A fixed set of dedicated threads behind a bounded queue, for costly work that is not a
//! batch of inference (explanations, layer inspection): the async side submits a closure and
//! awaits its result; a full queue is refused at once, never waited on.

use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use lathe_types::{ApiError, ErrorKind};
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Dedicated worker threads with a bounded queue of waiting jobs.
pub struct WorkPool {
    name: String,
    queue: usize,
    sender: Mutex<Option<SyncSender<Job>>>,
}

impl WorkPool {
    /// Starts `threads` (at least 1) threads named `{name}-{i}` behind a queue of `queue`
    /// waiting jobs (0: a job is accepted only when a thread is idle).
    pub fn new(name: &str, threads: usize, queue: usize) -> Arc<WorkPool> {
        let (tx, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || loop {
                    let job = match rx.lock() {
                        Ok(guard) => guard.recv(),
                        Err(_) => return,
                    };
                    match job {
                        // A panicking job drops its reply (the caller answers 500); the
                        // thread lives on for the next one.
                        Ok(job) => {
                            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                        }
                        Err(_) => return,
                    }
                })
                .expect("spawning a work-pool thread");
        }
        Arc::new(WorkPool { name: name.to_string(), queue, sender: Mutex::new(Some(tx)) })
    }

    /// Queues `work`; its result arrives on the returned receiver.
    ///
    /// # Errors
    /// [`ErrorKind::ResourceExhausted`] when every thread is busy and the queue is full
    /// (the caller answers 429); [`ErrorKind::Unavailable`] after [`WorkPool::close`].
    pub fn submit<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<oneshot::Receiver<T>, ApiError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(work());
        });
        let guard = self.sender.lock().map_err(|_| ApiError::new(ErrorKind::Internal, "work pool poisoned"))?;
        let Some(sender) = guard.as_ref() else {
            return Err(ApiError::new(ErrorKind::Unavailable, format!("{} is shutting down", self.name)));
        };
        match sender.try_send(job) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => Err(ApiError::new(
                ErrorKind::ResourceExhausted,
                format!("{} are busy ({} waiting); retry later", self.name, self.queue),
            )),
            Err(TrySendError::Disconnected(_)) => {
                Err(ApiError::new(ErrorKind::Unavailable, format!("{} stopped", self.name)))
            }
        }
    }

    /// Stops taking jobs; the threads finish what is queued and end.
    pub fn close(&self) {
        if let Ok(mut guard) = self.sender.lock() {
            guard.take();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_jobs_and_refuses_when_busy_and_full() {
        let pool = WorkPool::new("explanations", 1, 1);
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let first = pool.submit(move || wait.recv().is_ok()).unwrap();
        // The thread may not have taken the first job yet: fill until refused.
        let mut queued = Vec::new();
        let refused = loop {
            match pool.submit(|| true) {
                Ok(rx) => queued.push(rx),
                Err(e) => break e,
            }
            assert!(queued.len() <= 2, "a queue of 1 behind 1 thread took {} jobs", queued.len() + 1);
        };
        assert_eq!(refused.kind, ErrorKind::ResourceExhausted);
        assert!(refused.message.contains("explanations are busy"), "{}", refused.message);
        release.send(()).unwrap();
        assert!(first.await.unwrap());
        for rx in queued {
            assert!(rx.await.unwrap());
        }
        pool.close();
        assert_eq!(pool.submit(|| ()).unwrap_err().kind, ErrorKind::Unavailable);
    }

    #[tokio::test]
    async fn a_panicking_job_leaves_the_thread_serving() {
        let pool = WorkPool::new("inspections", 1, 4);
        let failed = pool.submit(|| -> u8 { panic!("a bad job") }).unwrap();
        assert!(failed.await.is_err(), "the reply is dropped");
        assert_eq!(pool.submit(|| 7).unwrap().await.unwrap(), 7);
    }
}
