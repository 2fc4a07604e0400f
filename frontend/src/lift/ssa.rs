//! Which variables each block receives as block parameters.
//!
//! The lifter's variables are the registers r0 to r9 and the promoted stack pieces (see
//! [`super::stack`]). SSA form with block parameters needs, at every block that has more than
//! one predecessor, one parameter for each variable whose value may differ by the path taken.
//! This module computes that set as "live on entry and set on at least one path to here":
//! liveness keeps dead values out of the parameters (pruned SSA), and the may-be-set analysis
//! keeps out registers that no path has written (reading those is the error the lifter reports).
//! Blocks with a single predecessor take no parameters at all: they see the values at the end
//! of their predecessor, which dominates them.
//!
//! A variable that is set on some paths into a merge but not on others gets a placeholder zero
//! on the unset paths. The kernel verifier proves that such a register is never read on those
//! paths, and for a stack piece zero is exactly what an unwritten frame holds in the
//! interpreter (and in the IR executor), so the placeholder is never observable.

use super::cfg::Cfg;

/// A small set of variable numbers.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct VarSet {
    words: Vec<u64>,
}

impl VarSet {
    pub fn new(n: usize) -> VarSet {
        VarSet {
            words: vec![0; n.div_ceil(64)],
        }
    }

    pub fn insert(&mut self, v: usize) {
        self.words[v / 64] |= 1 << (v % 64);
    }

    pub fn remove(&mut self, v: usize) {
        self.words[v / 64] &= !(1 << (v % 64));
    }

    pub fn contains(&self, v: usize) -> bool {
        self.words
            .get(v / 64)
            .is_some_and(|w| w & (1 << (v % 64)) != 0)
    }

    /// Adds every member of `other`; true when `self` grew.
    pub fn union_with(&mut self, other: &VarSet) -> bool {
        let mut grew = false;
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            let n = *a | *b;
            grew |= n != *a;
            *a = n;
        }
        grew
    }

    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &w)| {
            (0..64)
                .filter(move |b| w & (1 << b) != 0)
                .map(move |b| i * 64 + b)
        })
    }
}

/// What one instruction does to the variables, in order: it reads `uses`, then sets `defs`
/// and leaves `kills` unset (r1 to r5 after a call).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effect {
    pub uses: Vec<usize>,
    pub defs: Vec<usize>,
    pub kills: Vec<usize>,
}

/// The block parameters of every block of a function.
#[derive(Clone, Debug)]
pub struct BlockParams {
    /// For each block: the variables it takes as parameters, in increasing order (empty for
    /// single-predecessor and unreachable blocks).
    pub params: Vec<Vec<usize>>,
    /// For each block: whether it merges paths (and so takes parameters).
    pub merges: Vec<bool>,
    /// Variables live on entry to the function's first block.
    pub live_in_entry: VarSet,
}

/// Computes block parameters. `effects(slot)` gives each instruction's effect; `entry_set`
/// is what is set on entry (the function's parameters); `entry_has_preds` says whether some
/// jump goes back to the first instruction, which then also merges with the entry path.
pub fn block_params(
    cfg: &Cfg,
    nvars: usize,
    slots: &dyn Fn(usize) -> Vec<usize>,
    effects: &dyn Fn(usize) -> Effect,
    entry_set: &VarSet,
) -> BlockParams {
    let n = cfg.blocks.len();
    let block_effects: Vec<Vec<Effect>> = (0..n)
        .map(|b| {
            if cfg.reachable[b] {
                slots(b).into_iter().map(effects).collect()
            } else {
                Vec::new()
            }
        })
        .collect();
    // Liveness, backwards to a fixpoint.
    let mut live_in = vec![VarSet::new(nvars); n];
    loop {
        let mut changed = false;
        for &b in cfg.rpo.iter().rev() {
            let mut live = VarSet::new(nvars);
            for s in cfg.blocks[b].successors() {
                live.union_with(&live_in[s]);
            }
            for e in block_effects[b].iter().rev() {
                for &d in e.defs.iter().chain(&e.kills) {
                    live.remove(d);
                }
                for &u in &e.uses {
                    live.insert(u);
                }
            }
            changed |= live_in[b].union_with(&live);
        }
        if !changed {
            break;
        }
    }
    // Variables set on some path, forwards to a fixpoint.
    let mut set_in = vec![VarSet::new(nvars); n];
    set_in[0] = entry_set.clone();
    loop {
        let mut changed = false;
        for &b in &cfg.rpo {
            let mut set = set_in[b].clone();
            for e in &block_effects[b] {
                for &k in &e.kills {
                    set.remove(k);
                }
                for &d in &e.defs {
                    set.insert(d);
                }
            }
            for s in cfg.blocks[b].successors() {
                changed |= set_in[s].union_with(&set);
            }
        }
        if !changed {
            break;
        }
    }
    let mut params = vec![Vec::new(); n];
    let mut merges = vec![false; n];
    for &b in &cfg.rpo {
        let preds = cfg.preds[b].len() + usize::from(b == 0);
        if preds > 1 {
            merges[b] = true;
            params[b] = live_in[b]
                .iter()
                .filter(|&v| set_in[b].contains(v))
                .collect();
        }
    }
    BlockParams {
        params,
        merges,
        live_in_entry: live_in[0].clone(),
    }
}
