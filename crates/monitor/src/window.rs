//! The last rows a version received.

use std::collections::VecDeque;

/// One row: its features and its outputs.
type Row = (Box<[f32]>, Box<[f32]>);

/// A bounded sliding window of rows: each row's features (after a table's column encoding,
/// before scaling) and its outputs (the predicted class index, or the target values).
#[derive(Debug)]
pub struct LiveWindow {
    capacity: usize,
    rows: VecDeque<Row>,
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
    /// A window of the last `capacity` rows (at least 1).
    pub fn new(capacity: usize) -> LiveWindow {
        LiveWindow { capacity: capacity.max(1), rows: VecDeque::new(), seen: 0 }
    }

    /// Adds `rows` rows: `features` holds `rows · width` values, `outputs` `rows · k`.
    pub fn push(&mut self, features: &[f32], outputs: &[f32], rows: usize) {
        if rows == 0 {
            return;
        }
        let (fw, ow) = (features.len() / rows, outputs.len() / rows);
        for r in 0..rows {
            if self.rows.len() == self.capacity {
                self.rows.pop_front();
            }
            let f = features[r * fw..(r + 1) * fw].into();
            let o = outputs[r * ow..(r + 1) * ow].into();
            self.rows.push_back((f, o));
        }
        self.seen += rows as u64;
    }

    /// Rows received since the window was made.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no row is held.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// A copy of the rows, for measuring off the request path.
    pub fn snapshot(&self) -> WindowSnapshot {
        let (features, outputs) = self.rows.iter().cloned().unzip();
        WindowSnapshot { features, outputs, seen: self.seen }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_rows_only() {
        let mut w = LiveWindow::new(3);
        w.push(&[1.0, 1.0, 2.0, 2.0], &[0.0, 1.0], 2);
        w.push(&[3.0, 3.0, 4.0, 4.0], &[2.0, 3.0], 2);
        let s = w.snapshot();
        assert_eq!(s.seen, 4);
        assert_eq!(s.features.iter().map(|f| f[0]).collect::<Vec<_>>(), vec![2.0, 3.0, 4.0]);
        assert_eq!(s.outputs.iter().map(|o| o[0]).collect::<Vec<_>>(), vec![1.0, 2.0, 3.0]);
    }
}
