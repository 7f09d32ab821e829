//! Transparent huge pages for the large arrays. Random access over arrays of hundreds of MB
//! misses the TLB on nearly every access with 4 KiB pages (a second-level TLB covers a few
//! MiB); Linux backs memory advised `MADV_HUGEPAGE` with 2 MiB pages, also under the common
//! THP setting "madvise". The advice only helps pages not yet written, so growth goes
//! through here and the new room is written afterwards.

/// Arrays below this size are left alone: they fit in the TLB's reach anyway.
const MIN_BYTES: usize = 4 << 20;

/// Makes room for `additional` more elements (doubling, as `Vec::reserve`). A large buffer
/// is allocated fresh, advised, and only then filled with the old contents: `realloc` would
/// copy (or remap) them onto small pages first.
pub(crate) fn reserve<T>(v: &mut Vec<T>, additional: usize) {
    let need = v.len() + additional;
    if need <= v.capacity() {
        return;
    }
    let cap = need.max(2 * v.capacity());
    if cap * std::mem::size_of::<T>() < MIN_BYTES {
        v.reserve(additional);
        return;
    }
    let mut grown = Vec::with_capacity(cap);
    advise(&grown);
    grown.append(v);
    *v = grown;
}

/// `v.try_reserve(additional)`, then advice for the room not yet written: for buffers that
/// grow without bound, where copying at every doubling would cost more than the small pages
/// it avoids (`realloc` remaps large buffers without copying).
pub(crate) fn try_reserve_unbounded<T>(
    v: &mut Vec<T>,
    additional: usize,
) -> Result<(), std::collections::TryReserveError> {
    let before = v.capacity();
    v.try_reserve(additional)?;
    if v.capacity() != before {
        advise(v);
    }
    Ok(())
}

/// A zeroed vector, on huge pages when large: for primitive `T` the zeroed buffer comes from
/// `calloc`, whose large blocks are fresh pages nobody has written yet, so the advice takes
/// effect and filling it faults in 2 MiB at a time (what numpy does for its arrays).
pub(crate) fn zeroed<T: bytemuck::Zeroable + Clone>(n: usize) -> Vec<T> {
    let v = vec![T::zeroed(); n];
    advise(&v);
    v
}

/// Advises huge pages for the 2 MiB-aligned part of `v`'s buffer; errors are ignored (a
/// kernel without THP keeps 4 KiB pages).
fn advise<T>(v: &Vec<T>) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let bytes = v.capacity() * std::mem::size_of::<T>();
        if bytes < MIN_BYTES {
            return;
        }
        let start = (v.as_ptr() as usize).next_multiple_of(HUGE);
        let end = (v.as_ptr() as usize + bytes) & !(HUGE - 1);
        if end > start {
            // SAFETY: the range lies inside `v`'s allocation; MADV_HUGEPAGE changes how
            // pages are backed, never their contents.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
}

#[cfg(test)]
mod tests {
    #[test]
    fn growth_keeps_contents() {
        let mut v: Vec<u64> = (0..1000).collect();
        super::reserve(&mut v, 1 << 20);
        assert!(v.capacity() >= 1000 + (1 << 20));
        assert!(v.iter().copied().eq(0..1000));
        let z: Vec<f64> = super::zeroed(1 << 20);
        assert_eq!(z.len(), 1 << 20);
        assert!(z.iter().all(|&x| x == 0.0));
    }
}
