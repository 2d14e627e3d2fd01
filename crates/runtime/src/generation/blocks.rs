//! The KV cache's block table bookkeeping (vLLM V1's `KVCacheManager`): a bounded pool of
//! fixed-size blocks, reference-counted, with automatic prefix caching. A full block's hash
//! chains its parent's hash and its token ids; blocks nobody holds wait in an LRU free queue
//! and stay reusable by hash until they are popped for a new allocation. Hashes are keyed per
//! pool (SipHash with random keys) and a hit is confirmed by comparing the block's tokens, so
//! a client cannot forge a collision to read another request's KV (vLLM's CVE-2025-25183).

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hash, Hasher};

/// Block ids of a pool and who holds them.
pub struct BlockPool {
    block_size: usize,
    keys: RandomState,
    refs: Vec<u32>,
    hashes: Vec<Option<u64>>,
    /// The tokens of each block findable by hash.
    tokens: Vec<Vec<u32>>,
    cached: HashMap<u64, u32>,
    /// Free blocks by the time they were freed (oldest first), and each free block's stamp.
    free: BTreeMap<u64, u32>,
    stamps: Vec<u64>,
    clock: u64,
}

impl BlockPool {
    /// A pool of `blocks` blocks of `block_size` positions, all free.
    pub fn new(blocks: usize, block_size: usize) -> BlockPool {
        BlockPool {
            block_size,
            keys: RandomState::new(),
            refs: vec![0; blocks],
            hashes: vec![None; blocks],
            tokens: vec![Vec::new(); blocks],
            cached: HashMap::new(),
            free: (0..blocks as u64).map(|b| (b, b as u32)).collect(),
            stamps: (0..blocks as u64).collect(),
            clock: blocks as u64,
        }
    }

    /// The hash of a full block of `tokens` after the block hashed `parent` (`None`: the
    /// first block of a sequence).
    pub fn hash(&self, parent: Option<u64>, tokens: &[u32]) -> u64 {
        let mut h = self.keys.build_hasher();
        parent.hash(&mut h);
        tokens.hash(&mut h);
        h.finish()
    }

    /// Positions per block.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Blocks in the pool.
    pub fn total(&self) -> usize {
        self.refs.len()
    }

    /// Blocks held by a sequence.
    pub fn used(&self) -> usize {
        self.total() - self.free.len()
    }

    /// Takes a free block (the least recently freed; its cached hash is forgotten).
    pub fn allocate(&mut self) -> Option<u32> {
        let (_, block) = self.free.pop_first()?;
        if let Some(h) = self.hashes[block as usize].take() {
            if self.cached.get(&h) == Some(&block) {
                self.cached.remove(&h);
            }
        }
        self.refs[block as usize] = 1;
        Some(block)
    }

    fn acquire(&mut self, block: u32) {
        let b = block as usize;
        if self.refs[b] == 0 {
            self.free.remove(&self.stamps[b]);
        }
        self.refs[b] += 1;
    }

    /// Releases a sequence's blocks, last block first into the free queue (so that it is
    /// reused before the prefix it extends).
    pub fn release(&mut self, blocks: &[u32]) {
        for &block in blocks.iter().rev() {
            let b = block as usize;
            self.refs[b] -= 1;
            if self.refs[b] == 0 {
                self.clock += 1;
                self.stamps[b] = self.clock;
                self.free.insert(self.clock, block);
            }
        }
    }

    /// The cached blocks holding the longest run of full blocks of `tokens` from the start,
    /// covering at most `limit` tokens, acquired for the caller; and their hashes.
    pub fn lookup(&mut self, tokens: &[u32], limit: usize) -> (Vec<u32>, Vec<u64>) {
        let (mut blocks, mut hashes) = (Vec::new(), Vec::new());
        for chunk in tokens[..limit.min(tokens.len())].chunks_exact(self.block_size) {
            let h = self.hash(hashes.last().copied(), chunk);
            let Some(&block) = self.cached.get(&h) else { break };
            if self.tokens[block as usize] != chunk {
                break;
            }
            self.acquire(block);
            blocks.push(block);
            hashes.push(h);
        }
        (blocks, hashes)
    }

    /// Makes a full, computed block of `tokens` findable by `hash` (unless another block
    /// already is).
    pub fn register(&mut self, block: u32, hash: u64, tokens: &[u32]) {
        if let std::collections::hash_map::Entry::Vacant(e) = self.cached.entry(hash) {
            e.insert(block);
            self.hashes[block as usize] = Some(hash);
            self.tokens[block as usize] = tokens.to_vec();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_blocks_stay_findable_until_reused() {
        let mut pool = BlockPool::new(3, 2);
        let tokens = [1, 2, 3, 4, 5];
        let a = pool.allocate().unwrap();
        let b = pool.allocate().unwrap();
        let h1 = pool.hash(None, &tokens[..2]);
        let h2 = pool.hash(Some(h1), &tokens[2..4]);
        pool.register(a, h1, &tokens[..2]);
        pool.register(b, h2, &tokens[2..4]);
        pool.release(&[a, b]);
        assert_eq!(pool.used(), 0);
        // At most 4 tokens may hit: both blocks come back, held again.
        assert_eq!(pool.lookup(&tokens, 4), (vec![a, b], vec![h1, h2]));
        assert_eq!(pool.used(), 2);
        assert_eq!(pool.lookup(&tokens, 3).0, vec![a], "a hit never covers the limit");
        pool.release(&[a]);
        pool.release(&[a, b]);
        // Reuse takes the never-used block first, then b (freed last-block-first), then a.
        let order: Vec<u32> = (0..3).map(|_| pool.allocate().unwrap()).collect();
        assert_eq!(order, vec![2, b, a]);
        assert!(pool.allocate().is_none());
        pool.release(&order);
        assert!(pool.lookup(&tokens, 4).0.is_empty(), "reused blocks lost their hashes");
    }

    #[test]
    fn a_hit_needs_the_same_tokens_not_only_the_same_hash() {
        let mut pool = BlockPool::new(2, 2);
        let block = pool.allocate().unwrap();
        // A block registered under the hash of [1, 2] while holding [7, 8]: a forged collision.
        pool.register(block, pool.hash(None, &[1, 2]), &[7, 8]);
        pool.release(&[block]);
        assert!(pool.lookup(&[1, 2, 3], 2).0.is_empty());
        assert_ne!(BlockPool::new(1, 2).hash(None, &[1, 2]), pool.hash(None, &[1, 2]), "keys differ per pool");
    }
}
