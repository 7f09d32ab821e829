//! The archive's internal consistency, asserted (tests, fuzzing and the `check-invariants`
//! feature; not part of the documented API).

use super::Archive;
use crate::lineage::NOT_PLACED;

impl Archive {
    /// Asserts that every part agrees with every other; panics where one does not.
    #[doc(hidden)]
    pub fn check_invariants(&self) {
        let n = self.len();
        assert!(n <= self.cfg.capacity);
        let ids: Vec<u64> = self.residents.records().iter().map(|r| r.id).collect();
        self.priorities.check(&ids);
        for (s, &id) in ids.iter().enumerate() {
            assert_eq!(self.log[id].slot as usize, s, "log slot of resident {id}");
            assert_eq!(self.slot_of(id), Some(s));
        }
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert!(
            sorted.windows(2).all(|w| w[0] < w[1]),
            "an id resides twice"
        );
        assert!(sorted.last().map_or(true, |&id| id < self.log.next_id()));
        for (id, r) in self.log.pinned() {
            assert!(
                r.slot != NOT_PLACED && self.slot_of(id).is_some(),
                "pinned non-resident"
            );
        }
        self.log.check();
        if let Some(dim) = self.cfg.embedding_dim {
            let (rows, norms) = self.embedding_rows();
            assert_eq!((rows.len(), norms.len()), (n * dim, n));
        }
    }
}
