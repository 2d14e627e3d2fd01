//! The last rows a version received, in a fixed ring of preallocated rows.

/// A bounded sliding window of rows: each row's features (after a table's column encoding,
/// before scaling) and its outputs (the predicted class index, or the target values). Rows of
/// another width than the window's (a new version of the features) restart it.
#[derive(Debug)]
pub struct LiveWindow {
    capacity: usize,
    widths: (usize, usize),
    features: Vec<f32>,
    outputs: Vec<f32>,
    next: usize,
    len: usize,
    seen: u64,
}

/// A copy of a window's rows.
#[derive(Debug, Clone, Default)]
pub struct WindowSnapshot {
    /// Feature rows, oldest first.
    pub features: Vec<Box<[f32]>>,
    /// Output rows, in the same order.
    pub outputs: Vec<Box<[f32]>>,
    /// Rows received since the window was made.
    pub seen: u64,
}

impl LiveWindow {
    /// A window of the last `capacity` rows (at least 1); memory is taken on the first row.
    pub fn new(capacity: usize) -> LiveWindow {
        LiveWindow {
            capacity: capacity.max(1),
            widths: (0, 0),
            features: Vec::new(),
            outputs: Vec::new(),
            next: 0,
            len: 0,
            seen: 0,
        }
    }

    /// Adds `rows` rows: `features` holds `rows · width` values, `outputs` `rows · k`.
    pub fn push(&mut self, features: &[f32], outputs: &[f32], rows: usize) {
        if rows == 0 {
            return;
        }
        let (fw, ow) = (features.len() / rows, outputs.len() / rows);
        if (fw, ow) != self.widths {
            self.widths = (fw, ow);
            self.features = vec![0.0; self.capacity * fw];
            self.outputs = vec![0.0; self.capacity * ow];
            (self.next, self.len) = (0, 0);
        }
        for r in 0..rows {
            let at = self.next;
            self.features[at * fw..(at + 1) * fw].copy_from_slice(&features[r * fw..(r + 1) * fw]);
            self.outputs[at * ow..(at + 1) * ow].copy_from_slice(&outputs[r * ow..(r + 1) * ow]);
            self.next = (at + 1) % self.capacity;
            self.len = (self.len + 1).min(self.capacity);
        }
        self.seen += rows as u64;
    }

    /// Rows received since the window was made.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no row is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A copy of the rows, oldest first, for measuring off the request path.
    pub fn snapshot(&self) -> WindowSnapshot {
        let (fw, ow) = self.widths;
        let first = (self.next + self.capacity - self.len) % self.capacity;
        let slots = (0..self.len).map(|k| (first + k) % self.capacity);
        let features = slots.clone().map(|s| self.features[s * fw..(s + 1) * fw].into()).collect();
        let outputs = slots.map(|s| self.outputs[s * ow..(s + 1) * ow].into()).collect();
        WindowSnapshot { features, outputs, seen: self.seen }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_rows_only_oldest_first() {
        let mut w = LiveWindow::new(3);
        w.push(&[1.0, 1.0, 2.0, 2.0], &[0.0, 1.0], 2);
        w.push(&[3.0, 3.0, 4.0, 4.0], &[2.0, 3.0], 2);
        let s = w.snapshot();
        assert_eq!(s.seen, 4);
        assert_eq!(s.features.iter().map(|f| f[0]).collect::<Vec<_>>(), vec![2.0, 3.0, 4.0]);
        assert_eq!(s.outputs.iter().map(|o| o[0]).collect::<Vec<_>>(), vec![1.0, 2.0, 3.0]);
        w.push(&[5.0, 5.0, 5.0], &[9.0], 1);
        assert_eq!(w.len(), 1, "rows of another width restart the window");
    }
}
