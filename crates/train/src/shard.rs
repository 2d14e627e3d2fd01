//! One shard of a training step: forward, loss gradient and backward over some samples of
//! the batch, with buffers reused from step to step. A step over `T` threads runs `T` shards
//! on the same (read-locked) network and sums their gradients.

use std::sync::mpsc::{Receiver, Sender};
use std::sync::RwLock;
use std::time::Instant;

use lathe_sequential::{Gradients, Network, Rng, Workspace};

use crate::fit::PhaseTimes;
use crate::loss::{BatchLoss, Loss};
use crate::prepare::Split;

/// Buffers and random stream of one shard.
pub(crate) struct Shard {
    ws: Workspace,
    pub grads: Gradients,
    xb: Vec<f32>,
    yb: Vec<f32>,
    gbuf: Vec<f32>,
    pub rng: Rng,
}

impl Shard {
    pub fn new(net: &Network, rng: Rng) -> Shard {
        Shard {
            ws: Workspace::default(),
            grads: net.zero_gradients(),
            xb: Vec::new(),
            yb: Vec::new(),
            gbuf: Vec::new(),
            rng,
        }
    }

    /// The workspace of the last pass (its batch statistics feed batch norm).
    pub fn workspace(&self) -> &Workspace {
        &self.ws
    }

    /// Gradients of the batch-mean loss (over `total` samples) restricted to `indices`.
    pub fn compute(
        &mut self,
        net: &Network,
        data: &Split,
        indices: &[usize],
        total: usize,
        loss: &Loss,
        mut phases: Option<&mut PhaseTimes>,
    ) -> BatchLoss {
        let (len, width, m) = (net.input_len(), net.output_len(), indices.len());
        let mut lap = Instant::now();
        let mut tick = |slot: fn(&mut PhaseTimes) -> &mut f64| {
            if let Some(p) = phases.as_deref_mut() {
                let now = Instant::now();
                *slot(p) += (now - lap).as_secs_f64();
                lap = now;
            }
        };
        self.xb.resize(m * len, 0.0);
        let yw = data.width.max(1);
        self.yb.resize(m * yw, 0.0);
        self.gbuf.resize(m * width, 0.0);
        for (j, &i) in indices.iter().enumerate() {
            self.xb[j * len..(j + 1) * len].copy_from_slice(&data.x[i * len..(i + 1) * len]);
            self.yb[j * yw..(j + 1) * yw].copy_from_slice(&data.y[i * yw..(i + 1) * yw]);
        }
        tick(|p| &mut p.gather);
        let out = net.forward(&self.xb, m, &mut self.ws, true, &mut self.rng);
        tick(|p| &mut p.forward);
        let batch = loss.evaluate_scaled(out, &self.yb, width, Some(&mut self.gbuf), total);
        net.output_grad(&mut self.ws).copy_from_slice(&self.gbuf);
        tick(|p| &mut p.loss);
        net.backward(&self.xb, &mut self.ws, &mut self.grads, loss.fused());
        tick(|p| &mut p.backward);
        batch
    }
}

/// Work for a helper thread: a slice of the batch.
pub(crate) enum Job {
    /// A new epoch: reseed the dropout stream.
    Reseed(Rng),
    /// Compute gradients for these samples of a batch of `total`.
    Step { indices: Vec<usize>, total: usize },
}

/// A helper thread's answer to a step.
pub(crate) struct Done {
    pub loss: BatchLoss,
    pub grads: Gradients,
}

/// The loop of a helper thread: compute shards until the job channel closes. Gradients travel
/// back to the main thread and return with the next job, so nothing is allocated per step.
pub(crate) fn helper(
    net: &RwLock<Network>,
    data: &Split,
    loss: &Loss,
    jobs: Receiver<(Job, Option<Gradients>)>,
    done: Sender<Done>,
) {
    let mut shard = {
        let guard = net.read().expect("network lock");
        Shard::new(&guard, Rng::new(0))
    };
    while let Ok((job, grads)) = jobs.recv() {
        if let Some(g) = grads {
            shard.grads = g;
        }
        match job {
            Job::Reseed(rng) => shard.rng = rng,
            Job::Step { indices, total } => {
                let result = {
                    let guard = net.read().expect("network lock");
                    shard.compute(&guard, data, &indices, total, loss, None)
                };
                let grads = std::mem::replace(&mut shard.grads, Gradients { per_layer: Vec::new() });
                if done.send(Done { loss: result, grads }).is_err() {
                    return;
                }
            }
        }
    }
}

/// Adds `other` into `acc`.
pub(crate) fn add_gradients(acc: &mut Gradients, other: &Gradients) {
    for (la, lb) in acc.per_layer.iter_mut().zip(&other.per_layer) {
        for (a, b) in la.iter_mut().zip(lb) {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        }
    }
}
