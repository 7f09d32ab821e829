//! `Id`: the name of an entry.

use std::fmt;

/// An entry's id: assigned 0, 1, 2, … in insertion order, never reused, below
/// [`crate::ID_LIMIT`]. Rejected and evicted entries keep theirs (their lineage stays).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct Id(pub u64);

// SAFETY: a transparent wrapper of u64: any bit pattern is valid, no padding.
unsafe impl bytemuck::Zeroable for Id {}
// SAFETY: as above; u64 is Pod.
unsafe impl bytemuck::Pod for Id {}

impl Id {
    /// The id as a plain integer.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl From<u64> for Id {
    fn from(id: u64) -> Self {
        Id(id)
    }
}

impl From<Id> for u64 {
    fn from(id: Id) -> Self {
        id.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
