//! The kernel's LRU replacement for `BPF_MAP_TYPE_LRU_HASH` and `BPF_MAP_TYPE_LRU_PERCPU_HASH`,
//! modelled node for node so that the interpreter evicts exactly the entries the kernel evicts.
//!
//! The kernel does not keep a strict recency order. Every preallocated element carries a list
//! node with a reference bit that program lookups set. The nodes live on an active, an inactive
//! and a free list; when an element is needed, the lists are rotated (referenced nodes get
//! another round on the active list, unreferenced ones drift to the inactive list) and, when no
//! node is free, unreferenced inactive nodes are evicted in a batch, falling back to evicting
//! one node whatever its reference bit. Two flavours exist:
//!
//! - The common LRU (the default) has one set of lists for the whole map plus, for every
//!   possible CPU, a local free stack and a local pending list. A CPU takes free nodes in
//!   batches of `target_free` from the global lists into its free stack, and newly used nodes
//!   wait on its pending list until the next refill moves them to the global lists. When both
//!   are exhausted a CPU steals from the local lists of all CPUs in turn.
//! - The per-CPU LRU (`BPF_F_NO_COMMON_LRU`) splits the elements evenly between the possible
//!   CPUs at map creation; a CPU only ever allocates from, and evicts in, its own share.
//!
//! The lists are doubly linked through indices into one arena that holds the element nodes
//! followed by the list heads, so every traversal, every insertion at a head and the inactive
//! rotation cursor behave exactly as the kernel's `list_head` code does. Nothing here depends
//! on hash values or bucket order: the kernel finds a victim through its node, not its bucket.
//!
//! The lock-failure paths of the kernel (nodes flagged `pending_free` when a lock cannot be
//! taken) cannot happen in a single-threaded model and are left out.

/// Nodes a CPU moves from the global lists to its local free stack at once (the cap; the map
/// uses half its per-CPU share when that is smaller), and the length of a common-LRU scan.
const LOCAL_FREE_TARGET: u32 = 128;
/// Nodes a per-CPU LRU frees at once when its free list is empty, and its scan length.
const PERCPU_FREE_TARGET: u32 = 4;

/// Marks an arena entry without a link or an element without a value slot.
const NONE: u32 = u32::MAX;

/// The list a node is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Active,
    Inactive,
    Free,
    /// On a CPU's local free stack (common LRU only).
    LocalFree,
    /// On a CPU's local pending list (common LRU only).
    LocalPending,
}

impl Kind {
    fn is_local(self) -> bool {
        matches!(self, Kind::LocalFree | Kind::LocalPending)
    }
}

/// One set of active, inactive and free lists: the global one of a common LRU, or one CPU's
/// share of a per-CPU LRU.
#[derive(Clone, Debug)]
struct ListSet {
    active: u32,
    inactive: u32,
    free: u32,
    /// How many nodes the active and inactive lists hold (the free list is not counted).
    n_active: u32,
    n_inactive: u32,
    /// Where the next inactive rotation starts: a node of the inactive list or its head.
    next_inactive_rotation: u32,
}

/// A CPU's local lists in a common LRU.
#[derive(Clone, Debug)]
struct LocalList {
    pending: u32,
    /// The free stack; the kernel pushes and pops at the head, here the end of the vector.
    free: Vec<u32>,
    next_steal: u32,
}

/// The LRU state of one map.
#[derive(Clone, Debug)]
pub struct Lru {
    /// Number of element nodes; arena entries past them are list heads.
    nodes: u32,
    prev: Vec<u32>,
    next: Vec<u32>,
    kind: Vec<Kind>,
    referenced: Vec<bool>,
    /// The CPU whose lists a node belongs to: its share (per-CPU LRU) or the CPU that last
    /// took it (common LRU, meaningful while it is pending).
    cpu: Vec<u32>,
    /// The value slot of the map an element node stores its key and value in, once used.
    slot: Vec<u32>,
    /// The node of each value slot, the inverse of `slot`.
    node_of_slot: Vec<u32>,
    lists: Vec<ListSet>,
    locals: Vec<LocalList>,
    /// A scratch list head for the nodes a refill collects.
    scratch: u32,
    percpu: bool,
    cpus: u32,
    target_free: u32,
    nr_scans: u32,
}

/// The number of elements the kernel preallocates for an LRU map: `max_entries`, rounded up to
/// a multiple of the CPU count for a per-CPU LRU so that every CPU gets the same share (and
/// rounded down instead when rounding up would overflow).
pub fn element_count(max_entries: u32, cpus: u32, percpu: bool) -> u32 {
    let cpus = cpus.max(1);
    if !percpu {
        return max_entries;
    }
    let up = (max_entries as u64).div_ceil(cpus as u64) * cpus as u64;
    u32::try_from(up).unwrap_or(max_entries / cpus * cpus)
}

impl Lru {
    /// Builds the lists as the kernel's map creation leaves them: every node free, pushed onto
    /// the free list in element order (so the last element is taken first), and for a per-CPU
    /// LRU the elements handed out in consecutive runs, one run per CPU.
    pub fn new(nodes: u32, cpus: u32, percpu: bool) -> Lru {
        let cpus = cpus.max(1);
        let set_count = if percpu { cpus } else { 1 };
        let local_count = if percpu { 0 } else { cpus };
        let heads = set_count * 3 + local_count + 1;
        let total = nodes as usize + heads as usize;
        let mut lru = Lru {
            nodes,
            prev: (0..total as u32).collect(),
            next: (0..total as u32).collect(),
            kind: vec![Kind::Free; nodes as usize],
            referenced: vec![false; nodes as usize],
            cpu: vec![0; nodes as usize],
            slot: vec![NONE; nodes as usize],
            node_of_slot: Vec::new(),
            lists: Vec::new(),
            locals: Vec::new(),
            scratch: 0,
            percpu,
            cpus,
            target_free: 1,
            nr_scans: if percpu {
                PERCPU_FREE_TARGET
            } else {
                LOCAL_FREE_TARGET
            },
        };
        // Every head starts as an empty circular list, which the identity links above are.
        let mut head = nodes;
        let mut take = || {
            let h = head;
            head += 1;
            h
        };
        for _ in 0..set_count {
            let (active, inactive, free) = (take(), take(), take());
            lru.lists.push(ListSet {
                active,
                inactive,
                free,
                n_active: 0,
                n_inactive: 0,
                next_inactive_rotation: inactive,
            });
        }
        for cpu in 0..local_count {
            lru.locals.push(LocalList {
                pending: take(),
                free: Vec::new(),
                next_steal: cpu,
            });
        }
        lru.scratch = take();
        if percpu {
            let share = nodes / cpus;
            let mut i = 0;
            'cpus: for cpu in 0..cpus {
                loop {
                    if i == nodes {
                        break 'cpus;
                    }
                    lru.cpu[i as usize] = cpu;
                    let free = lru.lists[cpu as usize].free;
                    lru.list_add(i, free);
                    i += 1;
                    if share == 0 || i % share == 0 {
                        break;
                    }
                }
            }
        } else {
            let free = lru.lists[0].free;
            for i in 0..nodes {
                lru.list_add(i, free);
            }
            lru.target_free = ((nodes / cpus) / 2).clamp(1, LOCAL_FREE_TARGET);
        }
        lru
    }

    // Circular doubly linked list primitives over the arena, as `list_head` works.

    fn list_del(&mut self, x: u32) {
        let (p, n) = (self.prev[x as usize], self.next[x as usize]);
        self.next[p as usize] = n;
        self.prev[n as usize] = p;
        self.prev[x as usize] = x;
        self.next[x as usize] = x;
    }

    /// Inserts `x` right after `head`, i.e. at the front of the list.
    fn list_add(&mut self, x: u32, head: u32) {
        let n = self.next[head as usize];
        self.prev[x as usize] = head;
        self.next[x as usize] = n;
        self.prev[n as usize] = x;
        self.next[head as usize] = x;
    }

    fn list_move(&mut self, x: u32, head: u32) {
        self.list_del(x);
        self.list_add(x, head);
    }

    fn is_empty(&self, head: u32) -> bool {
        self.next[head as usize] == head
    }

    fn head_of(&self, l: usize, kind: Kind) -> u32 {
        let set = &self.lists[l];
        match kind {
            Kind::Active => set.active,
            Kind::Inactive => set.inactive,
            _ => set.free,
        }
    }

    fn count_inc(&mut self, l: usize, kind: Kind) {
        match kind {
            Kind::Active => self.lists[l].n_active += 1,
            Kind::Inactive => self.lists[l].n_inactive += 1,
            _ => {}
        }
    }

    fn count_dec(&mut self, l: usize, kind: Kind) {
        match kind {
            Kind::Active => self.lists[l].n_active = self.lists[l].n_active.saturating_sub(1),
            Kind::Inactive => self.lists[l].n_inactive = self.lists[l].n_inactive.saturating_sub(1),
            _ => {}
        }
    }

    /// Keeps the rotation cursor valid when its node leaves the inactive list: the cursor
    /// steps to the node before it, as the kernel does.
    fn leave_cursor(&mut self, l: usize, node: u32) {
        if self.lists[l].next_inactive_rotation == node {
            self.lists[l].next_inactive_rotation = self.prev[node as usize];
        }
    }

    /// Moves a node of the lists to a free list (the global one, a per-CPU one, or the
    /// scratch list of a refill), giving it kind `to`.
    fn move_to_free(&mut self, l: usize, node: u32, free: u32, to: Kind) {
        let from = self.kind[node as usize];
        if from.is_local() {
            return;
        }
        self.leave_cursor(l, node);
        self.count_dec(l, from);
        self.kind[node as usize] = to;
        self.list_move(node, free);
    }

    /// Moves a pending node from a CPU's local list into list `to` of the global lists.
    fn move_in(&mut self, l: usize, node: u32, to: Kind) {
        if !self.kind[node as usize].is_local() || to.is_local() {
            return;
        }
        self.count_inc(l, to);
        self.kind[node as usize] = to;
        self.referenced[node as usize] = false;
        let head = self.head_of(l, to);
        self.list_move(node, head);
    }

    /// Moves a node between (or within) the active, inactive and free lists, to the front of
    /// list `to`, clearing its reference bit.
    fn move_node(&mut self, l: usize, node: u32, to: Kind) {
        let from = self.kind[node as usize];
        if from.is_local() || to.is_local() {
            return;
        }
        if from != to {
            self.count_dec(l, from);
            self.count_inc(l, to);
            self.kind[node as usize] = to;
        }
        self.referenced[node as usize] = false;
        self.leave_cursor(l, node);
        let head = self.head_of(l, to);
        self.list_move(node, head);
    }

    /// Scans the active list from its tail: referenced nodes go back to the front with the bit
    /// cleared, the others to the front of the inactive list.
    fn rotate_active(&mut self, l: usize) {
        let head = self.lists[l].active;
        let first = self.next[head as usize];
        let mut node = self.prev[head as usize];
        let mut scanned = 0;
        while node != head {
            let before = self.prev[node as usize];
            let to = if self.referenced[node as usize] {
                Kind::Active
            } else {
                Kind::Inactive
            };
            self.move_node(l, node, to);
            scanned += 1;
            if scanned == self.nr_scans || node == first {
                break;
            }
            node = before;
        }
    }

    /// Scans the inactive list backwards from the rotation cursor, wrapping around its head,
    /// and moves referenced nodes to the active list; the cursor then rests where it stopped.
    fn rotate_inactive(&mut self, l: usize) {
        let head = self.lists[l].inactive;
        if self.is_empty(head) {
            return;
        }
        let start = self.lists[l].next_inactive_rotation;
        let mut last = self.next[start as usize];
        if last == head {
            last = self.next[last as usize];
        }
        let mut cur = start;
        let mut resume = head;
        let mut scanned = 0;
        while scanned < self.nr_scans {
            if cur == head {
                cur = self.prev[cur as usize];
                continue;
            }
            resume = self.prev[cur as usize];
            if self.referenced[cur as usize] {
                self.move_node(l, cur, Kind::Active);
            }
            if cur == last {
                break;
            }
            cur = resume;
            scanned += 1;
        }
        self.lists[l].next_inactive_rotation = resume;
    }

    fn rotate(&mut self, l: usize) {
        if self.lists[l].n_inactive < self.lists[l].n_active {
            self.rotate_active(l);
        }
        self.rotate_inactive(l);
    }

    /// Asks the map to drop the element of `node` from its hash table; false when the node
    /// holds no element there.
    fn evict(&self, node: u32, del: &mut dyn FnMut(u32) -> bool) -> bool {
        match self.slot.get(node as usize) {
            Some(&slot) if slot != NONE => del(slot),
            _ => false,
        }
    }

    /// Frees up to `want` unreferenced nodes from the tail of the inactive list (referenced
    /// ones found on the way go to the active list), scanning at most `nr_scans` nodes.
    fn shrink_inactive(
        &mut self,
        l: usize,
        want: u32,
        free: u32,
        to: Kind,
        del: &mut dyn FnMut(u32) -> bool,
    ) -> u32 {
        let head = self.lists[l].inactive;
        let mut node = self.prev[head as usize];
        let mut freed = 0;
        let mut scanned = 0;
        while node != head {
            let before = self.prev[node as usize];
            if self.referenced[node as usize] {
                self.move_node(l, node, Kind::Active);
            } else if self.evict(node, del) {
                self.move_to_free(l, node, free, to);
                freed += 1;
                if freed == want {
                    break;
                }
            }
            scanned += 1;
            if scanned == self.nr_scans {
                break;
            }
            node = before;
        }
        freed
    }

    /// Shrinks the inactive list and, when that frees nothing, evicts the oldest node of the
    /// inactive list (or of the active list when the inactive one is empty) regardless of
    /// its reference bit.
    fn shrink(
        &mut self,
        l: usize,
        want: u32,
        free: u32,
        to: Kind,
        del: &mut dyn FnMut(u32) -> bool,
    ) -> u32 {
        let freed = self.shrink_inactive(l, want, free, to, del);
        if freed > 0 {
            return freed;
        }
        let inactive = self.lists[l].inactive;
        let force = if self.is_empty(inactive) {
            self.lists[l].active
        } else {
            inactive
        };
        let mut node = self.prev[force as usize];
        while node != force {
            let before = self.prev[node as usize];
            if self.evict(node, del) {
                self.move_to_free(l, node, free, to);
                return 1;
            }
            node = before;
        }
        0
    }

    /// Moves a CPU's pending nodes, oldest first, to the front of the global active list
    /// (when referenced) or inactive list.
    fn flush_pending(&mut self, cpu: usize) {
        let head = self.locals[cpu].pending;
        let mut node = self.prev[head as usize];
        while node != head {
            let before = self.prev[node as usize];
            let to = if self.referenced[node as usize] {
                Kind::Active
            } else {
                Kind::Inactive
            };
            self.move_in(0, node, to);
            node = before;
        }
    }

    /// Refills a CPU's local free stack from the global lists: flush its pending nodes, rotate,
    /// take up to `target_free` free nodes and evict to make up the rest.
    fn refill_local(&mut self, cpu: usize, del: &mut dyn FnMut(u32) -> bool) {
        self.flush_pending(cpu);
        self.rotate(0);
        let free = self.lists[0].free;
        let scratch = self.scratch;
        let mut taken = 0;
        let mut node = self.next[free as usize];
        while node != free {
            let after = self.next[node as usize];
            self.move_to_free(0, node, scratch, Kind::LocalFree);
            taken += 1;
            if taken == self.target_free {
                break;
            }
            node = after;
        }
        if taken < self.target_free {
            self.shrink(0, self.target_free - taken, scratch, Kind::LocalFree, del);
        }
        // The scratch list is walked from its front and every node pushed onto the stack, so
        // the node collected first ends up on top.
        let mut node = self.next[scratch as usize];
        while node != scratch {
            let after = self.next[node as usize];
            self.list_del(node);
            self.locals[cpu].free.push(node);
            node = after;
        }
    }

    fn add_pending(&mut self, cpu: usize, node: u32) {
        self.cpu[node as usize] = cpu as u32;
        self.kind[node as usize] = Kind::LocalPending;
        self.referenced[node as usize] = false;
        let head = self.locals[cpu].pending;
        self.list_add(node, head);
    }

    /// Takes the oldest pending node of a CPU whose element can be evicted, preferring
    /// unreferenced ones.
    fn pop_pending(&mut self, cpu: usize, del: &mut dyn FnMut(u32) -> bool) -> Option<u32> {
        let head = self.locals[cpu].pending;
        for force in [false, true] {
            let mut node = self.prev[head as usize];
            while node != head {
                if (force || !self.referenced[node as usize]) && self.evict(node, del) {
                    self.list_del(node);
                    return Some(node);
                }
                node = self.prev[node as usize];
            }
        }
        None
    }

    fn common_pop_free(&mut self, cpu: usize, del: &mut dyn FnMut(u32) -> bool) -> Option<u32> {
        let mut node = self.locals[cpu].free.pop();
        if node.is_none() {
            self.refill_local(cpu, del);
            node = self.locals[cpu].free.pop();
        }
        if let Some(n) = node {
            self.add_pending(cpu, n);
            return Some(n);
        }
        // Nothing free here or globally: steal from the CPUs' local lists in turn, starting
        // where the last steal of this CPU stopped.
        let first = self.locals[cpu].next_steal;
        let mut steal = first;
        loop {
            let victim = steal as usize;
            node = self.locals[victim].free.pop();
            if node.is_none() {
                node = self.pop_pending(victim, del);
            }
            steal = (steal + 1) % self.cpus;
            if node.is_some() || steal == first {
                break;
            }
        }
        self.locals[cpu].next_steal = steal;
        let n = node?;
        self.add_pending(cpu, n);
        Some(n)
    }

    fn percpu_pop_free(&mut self, cpu: usize, del: &mut dyn FnMut(u32) -> bool) -> Option<u32> {
        self.rotate(cpu);
        let free = self.lists[cpu].free;
        if self.is_empty(free) {
            self.shrink(cpu, PERCPU_FREE_TARGET, free, Kind::Free, del);
        }
        if self.is_empty(free) {
            return None;
        }
        let node = self.next[free as usize];
        self.referenced[node as usize] = false;
        self.move_node(cpu, node, Kind::Inactive);
        Some(node)
    }

    /// Takes a node for a new element on `cpu`, evicting elements as the kernel would; `del`
    /// removes the element stored in the given value slot from the map's hash table and says
    /// whether it was there. `None` when no node can be had (the kernel's `-ENOMEM`).
    pub fn pop_free(&mut self, cpu: u32, del: &mut dyn FnMut(u32) -> bool) -> Option<u32> {
        let cpu = cpu.min(self.cpus - 1) as usize;
        if self.percpu {
            self.percpu_pop_free(cpu, del)
        } else {
            self.common_pop_free(cpu, del)
        }
    }

    /// Gives back the node of a deleted or replaced element, or of an insert that failed.
    fn push_free(&mut self, node: u32) {
        let Some(&kind) = self.kind.get(node as usize) else {
            return;
        };
        if self.percpu {
            let l = self.cpu[node as usize] as usize;
            if l < self.lists.len() {
                self.move_node(l, node, Kind::Free);
            }
            return;
        }
        match kind {
            // A node freed twice is ignored, as the kernel warns and ignores it.
            Kind::Free | Kind::LocalFree => {}
            Kind::LocalPending => {
                let cpu = self.cpu[node as usize] as usize;
                self.kind[node as usize] = Kind::LocalFree;
                self.referenced[node as usize] = false;
                self.list_del(node);
                if let Some(local) = self.locals.get_mut(cpu) {
                    local.free.push(node);
                }
            }
            Kind::Active | Kind::Inactive => self.move_node(0, node, Kind::Free),
        }
    }

    /// The value slot of a node, when it has held an element before.
    pub fn slot_of(&self, node: u32) -> Option<u32> {
        self.slot.get(node as usize).copied().filter(|s| *s != NONE)
    }

    /// Ties a node to the value slot its elements are stored in from now on.
    pub fn bind(&mut self, node: u32, slot: u32) {
        if node >= self.nodes {
            return;
        }
        self.slot[node as usize] = slot;
        let s = slot as usize;
        if self.node_of_slot.len() <= s {
            self.node_of_slot.resize(s + 1, NONE);
        }
        self.node_of_slot[s] = node;
    }

    fn node_of(&self, slot: u32) -> Option<u32> {
        self.node_of_slot
            .get(slot as usize)
            .copied()
            .filter(|n| *n != NONE)
    }

    /// Sets the reference bit of the element in `slot`, as a program's lookup does.
    pub fn mark(&mut self, slot: u32) {
        if let Some(n) = self.node_of(slot) {
            self.referenced[n as usize] = true;
        }
    }

    /// Gives back the node of the element in `slot` after the map dropped the element.
    pub fn release(&mut self, slot: u32) {
        if let Some(n) = self.node_of(slot) {
            self.push_free(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A map stand-in: which slots hold an element.
    fn pop(lru: &mut Lru, live: &mut Vec<bool>, cpu: u32) -> Option<u32> {
        let node = lru.pop_free(cpu, &mut |slot| {
            let was = live[slot as usize];
            live[slot as usize] = false;
            was
        })?;
        let slot = match lru.slot_of(node) {
            Some(s) => s,
            None => {
                live.push(false);
                let s = live.len() as u32 - 1;
                lru.bind(node, s);
                s
            }
        };
        live[slot as usize] = true;
        Some(slot)
    }

    #[test]
    fn per_cpu_share_is_rounded_up() {
        assert_eq!(element_count(8, 3, true), 9);
        assert_eq!(element_count(8, 3, false), 8);
        assert_eq!(element_count(u32::MAX, 2, true), u32::MAX - 1);
    }

    #[test]
    fn common_lru_never_exceeds_its_elements_and_keeps_referenced_ones() {
        let mut lru = Lru::new(8, 2, false);
        let mut live = Vec::new();
        let hot = pop(&mut lru, &mut live, 0).unwrap();
        for _ in 0..100 {
            lru.mark(hot);
            pop(&mut lru, &mut live, 0).unwrap();
            assert!(live.iter().filter(|l| **l).count() <= 8);
        }
        assert!(live[hot as usize], "a referenced element was evicted");
    }

    #[test]
    fn per_cpu_lru_uses_only_the_running_cpus_share() {
        let mut lru = Lru::new(8, 2, true);
        let mut live = Vec::new();
        for _ in 0..20 {
            pop(&mut lru, &mut live, 1).unwrap();
            assert!(live.iter().filter(|l| **l).count() <= 4);
        }
    }

    #[test]
    fn released_nodes_are_reused_first_and_refills_evict_in_batches() {
        let mut lru = Lru::new(4, 1, false);
        let mut live = Vec::new();
        let slots: Vec<u32> = (0..4)
            .map(|_| pop(&mut lru, &mut live, 0).unwrap())
            .collect();
        live[slots[1] as usize] = false;
        lru.release(slots[1]);
        let again = pop(&mut lru, &mut live, 0).unwrap();
        assert_eq!(again, slots[1]);
        // The refill wanted two nodes (half of the four), found one free and evicted the
        // oldest element for the other, so the map now holds three.
        assert_eq!(live.iter().filter(|l| **l).count(), 3);
        assert!(!live[slots[0] as usize]);
    }
}
