//! The caller's output rows: selection keys become key indices and scores here, the one place
//! outside `score` that reads what a selection key means.

use crate::device;
use crate::score;
use pqtopk_abi::SelectParams;

/// `[rows, k]` key indices and, where `scores != 0`, `[rows, k]` scores.
#[derive(Clone, Copy)]
pub struct OutputRows {
    pub k: u32,
    pub metric: u32,
    pub indices: u64,
    pub scores: u64,
}

impl OutputRows {
    pub fn of(p: &SelectParams) -> OutputRows {
        OutputRows { k: p.shape.k, metric: p.shape.metric, indices: p.out_indices, scores: p.out_scores }
    }

    /// Writes slot `slot` of `row`: the key with selection key `key`, or padding.
    ///
    /// # Safety
    /// `row < rows`, `slot < k`.
    #[inline(always)]
    pub unsafe fn write(self, row: u32, slot: u32, key: Option<u64>) {
        let at = row as usize * self.k as usize + slot as usize;
        let (index, score) = match key {
            Some(key) => (score::index_of(key), score::score_of(key, self.metric)),
            None => (u32::MAX, score::padding_score(self.metric)),
        };
        // SAFETY: at < rows·k.
        unsafe {
            *(self.indices as *mut u32).add(at) = index;
            if self.scores != 0 {
                *(self.scores as *mut f32).add(at) = score;
            }
        }
    }

    /// Writes padding to slots `from..k` of `row`, spread over the block.
    ///
    /// # Safety
    /// `row < rows`.
    pub unsafe fn pad(self, row: u32, from: u32) {
        let mut slot = from + device::thread_idx();
        while slot < self.k {
            // SAFETY: slot < k.
            unsafe { self.write(row, slot, None) };
            slot += device::block_dim();
        }
    }
}
