//! The epoch loop: data-parallel steps over shuffled mini-batches (the main thread computes
//! the first shard of each batch, helper threads the others), then the epoch end: validation,
//! early stopping and a checkpoint.

use std::sync::atomic::Ordering;
use std::sync::{mpsc, RwLock, RwLockReadGuard};
use std::time::Instant;

use lathe_formats::spec::Task;
use lathe_formats::EpochRecord;
use lathe_sequential::{Gradients, Network, Rng};

use super::progress::{save_checkpoint, Progress};
use super::{FitOptions, PhaseTimes, Setup, PROGRESS_EVERY, STREAM_DROPOUT, STREAM_SHUFFLE};
use crate::error::TrainError;
use crate::events::Event;
use crate::loss::BatchLoss;
use crate::metrics::evaluate;
use crate::optim::{learning_rate, Optimizer};
use crate::shard::{add_gradients, helper, Done, Job, Shard};

/// How the epochs ended.
pub(super) struct Outcome {
    /// Epochs done, counting those of a resumed checkpoint.
    pub epochs_run: usize,
    /// Whether early stopping ended the fit.
    pub stopped_early: bool,
    /// Where the time went.
    pub phases: PhaseTimes,
}

/// The main thread's end of a helper thread.
struct Helper {
    jobs: mpsc::Sender<(Job, Option<Gradients>)>,
    done: mpsc::Receiver<Done>,
    grads: Option<Gradients>,
}

/// Everything the loop works with.
struct Epochs<'s, 'o> {
    setup: &'s Setup<'s>,
    net: &'s RwLock<Network>,
    optimizer: &'s mut Optimizer,
    progress: &'s mut Progress,
    opts: &'s mut FitOptions<'o>,
    helpers: Vec<Helper>,
    main: Shard,
    order: Vec<usize>,
    phases: PhaseTimes,
    started: Instant,
}

/// Loss and accuracy sums of an epoch so far.
#[derive(Default)]
struct Totals {
    loss_sum: f64,
    correct: usize,
    seen: usize,
}

/// Trains from `progress.start_epoch` to the spec's last epoch (or early stop); `started` is
/// when this run's fit time began.
pub(super) fn run_epochs(
    setup: &Setup,
    net: &RwLock<Network>,
    optimizer: &mut Optimizer,
    progress: &mut Progress,
    opts: &mut FitOptions,
    started: Instant,
) -> Result<Outcome, TrainError> {
    std::thread::scope(|scope| {
        let helpers = (1..setup.threads)
            .map(|_| {
                let (jobs, job_rx) = mpsc::channel();
                let (done_tx, done) = mpsc::channel();
                let (train, loss) = (&setup.data.train, &setup.loss);
                scope.spawn(move || helper(net, train, loss, job_rx, done_tx));
                Helper { jobs, done, grads: Some(read(net).zero_gradients()) }
            })
            .collect();
        let main = Shard::new(&read(net), Rng::new(0));
        let order = (0..setup.n).collect();
        let phases = PhaseTimes::default();
        let epochs = Epochs { setup, net, optimizer, progress, opts, helpers, main, order, phases, started };
        epochs.run()
    })
}

fn read(net: &RwLock<Network>) -> RwLockReadGuard<'_, Network> {
    net.read().expect("network lock")
}

fn helper_failed() -> TrainError {
    TrainError::Thread("a training thread stopped unexpectedly".into())
}

impl Epochs<'_, '_> {
    fn run(mut self) -> Result<Outcome, TrainError> {
        let (first, epochs) = (self.progress.start_epoch, self.setup.epochs);
        let mut outcome = Outcome { epochs_run: first, stopped_early: false, phases: PhaseTimes::default() };
        for epoch in first..epochs {
            let epoch_start = Instant::now();
            let epoch_lr = self.begin_epoch(epoch)?;
            let totals = self.train_epoch(epoch)?;
            self.end_epoch(epoch, epoch_start, epoch_lr, &totals)?;
            outcome.epochs_run = epoch + 1;
            let patience_over = self
                .setup
                .spec
                .fit
                .early_stopping
                .as_ref()
                .is_some_and(|es| self.progress.best.wait >= es.patience.max(1));
            if patience_over && epoch + 1 < epochs {
                outcome.stopped_early = true;
                let best_epoch = self.progress.best.epoch;
                (self.opts.on_event)(&Event::EarlyStop { epoch: epoch + 1, best_epoch });
                break;
            }
        }
        outcome.phases = self.phases;
        Ok(outcome)
    }

    /// Shuffles (stream `STREAM_SHUFFLE`, epoch) and reseeds every shard's dropout stream;
    /// returns the epoch's starting learning rate.
    fn begin_epoch(&mut self, epoch: usize) -> Result<f64, TrainError> {
        let (setup, seed) = (self.setup, self.setup.seed);
        (self.opts.on_event)(&Event::EpochStart { epoch: epoch + 1, epochs: setup.epochs, samples: setup.n });
        self.order.iter_mut().enumerate().for_each(|(i, o)| *o = i);
        if setup.spec.fit.shuffle {
            Rng::derived(seed, STREAM_SHUFFLE, epoch as u64).shuffle(&mut self.order);
        }
        self.main.rng = Rng::derived(seed, STREAM_DROPOUT, epoch as u64);
        for (t, h) in self.helpers.iter().enumerate() {
            let rng = Rng::derived(seed, STREAM_DROPOUT + 16 * (t as u64 + 1), epoch as u64);
            h.jobs.send((Job::Reseed(rng), None)).map_err(|_| helper_failed())?;
        }
        Ok(self.learning_rate(epoch))
    }

    /// The fraction classified correctly; `None` for regressors.
    fn accuracy(&self, correct: usize, seen: usize) -> Option<f64> {
        (self.setup.loss.task() == Task::Classification).then(|| correct as f64 / seen.max(1) as f64)
    }

    fn learning_rate(&self, epoch: usize) -> f64 {
        let spec = self.setup.spec;
        let schedule = spec.fit.lr_schedule.as_ref();
        learning_rate(spec.compile.optimizer.lr(), schedule, epoch, self.optimizer.step, self.setup.total_steps)
    }

    /// Every mini-batch of the epoch, with progress events.
    fn train_epoch(&mut self, epoch: usize) -> Result<Totals, TrainError> {
        let (n, bs) = (self.setup.n, self.setup.bs);
        let mut totals = Totals::default();
        let order = std::mem::take(&mut self.order);
        for (b, chunk) in order.chunks(bs).enumerate() {
            if self.opts.stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                return Err(TrainError::Interrupted);
            }
            let batch = self.step(epoch, chunk)?;
            totals.loss_sum += batch.sum;
            totals.correct += batch.correct;
            totals.seen += chunk.len();
            if (b + 1) % PROGRESS_EVERY == 0 || totals.seen == n {
                let accuracy = self.accuracy(totals.correct, totals.seen);
                (self.opts.on_event)(&Event::Progress {
                    epoch: epoch + 1,
                    seen: totals.seen,
                    samples: n,
                    loss: totals.loss_sum / totals.seen as f64,
                    accuracy,
                });
            }
        }
        self.order = order;
        Ok(totals)
    }

    /// One optimizer step on the samples `chunk`: shards out, gradients summed, weights updated.
    fn step(&mut self, epoch: usize, chunk: &[usize]) -> Result<BatchLoss, TrainError> {
        let m = chunk.len();
        let parts: Vec<&[usize]> = chunk.chunks(m.div_ceil(self.setup.threads)).collect();
        for (h, part) in self.helpers.iter_mut().zip(&parts[1..]) {
            let job = Job::Step { indices: part.to_vec(), total: m };
            h.jobs.send((job, h.grads.take())).map_err(|_| helper_failed())?;
        }
        let (train, loss) = (&self.setup.data.train, &self.setup.loss);
        let mut batch = self.main.compute(&read(self.net), train, parts[0], m, loss, Some(&mut self.phases));
        let wait = Instant::now();
        for h in self.helpers.iter_mut().take(parts.len() - 1) {
            let done = h.done.recv().map_err(|_| helper_failed())?;
            add_gradients(&mut self.main.grads, &done.grads);
            batch.sum += done.loss.sum;
            batch.correct += done.loss.correct;
            h.grads = Some(done.grads);
        }
        self.phases.wait += wait.elapsed().as_secs_f64();
        let update = Instant::now();
        {
            let mut net = self.net.write().expect("network lock");
            net.commit_statistics(self.main.workspace());
            let lr = self.learning_rate(epoch);
            self.optimizer.apply(&mut net, &self.main.grads, lr as f32);
        }
        self.phases.optimizer += update.elapsed().as_secs_f64();
        Ok(batch)
    }

    /// Validation, the epoch's record, early-stopping bookkeeping and the checkpoint.
    fn end_epoch(&mut self, epoch: usize, epoch_start: Instant, lr: f64, totals: &Totals) -> Result<(), TrainError> {
        let end_start = Instant::now();
        let (setup, n) = (self.setup, self.setup.n as f64);
        let net = read(self.net);
        let (val_loss, val_accuracy) = if setup.data.validation.is_empty() {
            (None, None)
        } else {
            let v = &setup.data.validation;
            let e = evaluate(&net, &v.x, &v.y, &setup.loss, setup.data.truths());
            (Some(e.loss), e.accuracy)
        };
        let record = EpochRecord {
            epoch: epoch + 1,
            loss: totals.loss_sum / n,
            accuracy: self.accuracy(totals.correct, totals.seen),
            val_loss,
            val_accuracy,
            lr,
            seconds: epoch_start.elapsed().as_secs_f64(),
        };
        (self.opts.on_event)(&Event::EpochEnd(record.clone()));
        self.progress.history.push(record.clone());
        if let Some(es) = &setup.spec.fit.early_stopping {
            self.progress.best.observe(es, &record, &net);
        }
        if let Some(store) = self.opts.checkpoints {
            let fit_seconds = self.progress.prior_seconds + self.started.elapsed().as_secs_f64();
            save_checkpoint(setup, store, &net, self.optimizer, self.progress, fit_seconds)?;
        }
        self.phases.epoch_end += end_start.elapsed().as_secs_f64();
        Ok(())
    }
}
