//! Payload bytes of resident slots in one contiguous buffer. A slot that is reused keeps its
//! extent when the new payload fits, so archives of similar-sized payloads never fragment;
//! otherwise the payload is appended and the buffer is compacted once garbage exceeds a
//! quarter of it.

#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Extent {
    pub offset: u64,
    pub len: u32,
    pub cap: u32,
}

#[derive(Clone, Default)]
pub struct Arena {
    bytes: Vec<u8>,
    extents: Vec<Extent>,
    live: u64,
}

impl Arena {
    pub fn get(&self, slot: usize) -> &[u8] {
        let e = self.extents[slot];
        &self.bytes[e.offset as usize..e.offset as usize + e.len as usize]
    }

    /// Sum of resident payload lengths.
    pub fn live_bytes(&self) -> u64 {
        self.live
    }

    pub fn memory_bytes(&self) -> usize {
        self.bytes.capacity() + self.extents.capacity() * std::mem::size_of::<Extent>()
    }

    /// Appends a new slot holding `payload`.
    pub fn push(&mut self, payload: &[u8]) {
        let offset = self.bytes.len() as u64;
        self.bytes.extend_from_slice(payload);
        let len = payload.len() as u32;
        self.extents.push(Extent {
            offset,
            len,
            cap: len,
        });
        self.live += len as u64;
    }

    /// Replaces the payload of an existing slot.
    pub fn replace(&mut self, slot: usize, payload: &[u8]) {
        let e = self.extents[slot];
        self.live = self.live - e.len as u64 + payload.len() as u64;
        if payload.len() <= e.cap as usize {
            let start = e.offset as usize;
            self.bytes[start..start + payload.len()].copy_from_slice(payload);
            self.extents[slot].len = payload.len() as u32;
        } else {
            let offset = self.bytes.len() as u64;
            self.bytes.extend_from_slice(payload);
            let len = payload.len() as u32;
            self.extents[slot] = Extent {
                offset,
                len,
                cap: len,
            };
            self.maybe_compact();
        }
    }

    /// Moves the last slot into `slot` (dropping what `slot` held) and shrinks by one.
    pub fn swap_remove(&mut self, slot: usize) {
        let e = self.extents.swap_remove(slot);
        self.live -= e.len as u64;
        self.maybe_compact();
    }

    fn maybe_compact(&mut self) {
        let used: u64 = self.bytes.len() as u64;
        if used > 1 << 20 && used - self.live > used / 4 {
            self.compact();
        }
    }

    /// Rewrites the buffer in slot order with no gaps and no spare capacity per extent.
    pub fn compact(&mut self) {
        let mut bytes = Vec::with_capacity(self.live as usize);
        for e in &mut self.extents {
            let start = e.offset as usize;
            e.offset = bytes.len() as u64;
            bytes.extend_from_slice(&self.bytes[start..start + e.len as usize]);
            e.cap = e.len;
        }
        self.bytes = bytes;
    }

    /// Builds an arena from concatenated payloads and their lengths.
    pub fn from_parts(bytes: Vec<u8>, lens: &[u32]) -> Self {
        let mut extents = Vec::with_capacity(lens.len());
        let mut offset = 0u64;
        for &len in lens {
            extents.push(Extent {
                offset,
                len,
                cap: len,
            });
            offset += len as u64;
        }
        Arena {
            live: offset,
            bytes,
            extents,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_reuses_space_and_compaction_keeps_contents() {
        let mut a = Arena::default();
        a.push(b"hello");
        a.push(b"world!");
        a.replace(0, b"hi");
        assert_eq!(a.get(0), b"hi");
        a.replace(0, b"a longer payload");
        assert_eq!(a.get(0), b"a longer payload");
        a.swap_remove(0);
        assert_eq!(a.get(0), b"world!");
        a.compact();
        assert_eq!(a.get(0), b"world!");
        assert_eq!(a.live_bytes(), 6);
        assert!(a.memory_bytes() >= 6);
    }
}
