//! Software prefetch hints for batch loops that know their next random accesses in advance.

/// How many items ahead of the one being processed a batch loop prefetches: far enough for a
/// load from memory (~100 ns) to arrive before its turn, near enough to stay in L1.
pub(crate) const AHEAD: usize = 8;

/// Asks the CPU to start loading the cache line holding `p`; a no-op where unsupported.
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults, even on an invalid address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Prefetches every cache line of `value`.
#[inline(always)]
pub(crate) fn prefetch_range<T>(value: &T) {
    let start = value as *const T as *const u8;
    for offset in (0..std::mem::size_of::<T>()).step_by(64) {
        prefetch(start.wrapping_add(offset));
    }
}

/// The element `index` of an array starting at `base`, as a pointer to prefetch (never read,
/// so an index past the end is harmless).
#[inline(always)]
pub(crate) fn at<T>(base: *const T, index: usize) -> *const T {
    base.wrapping_add(index)
}

/// The items in order, each handed out after `hint` was called on the item `distance` places
/// further on: the one loop shape behind every prefetching batch loop. The hint usually
/// computes an address from a raw base pointer (see [`at`]), so it borrows nothing the loop
/// body changes.
#[inline(always)]
pub(crate) fn ahead<'a, T>(
    items: &'a [T],
    distance: usize,
    hint: impl Fn(&T) + 'a,
) -> impl Iterator<Item = &'a T> + 'a {
    items.iter().enumerate().map(move |(i, item)| {
        if let Some(later) = items.get(i + distance) {
            hint(later);
        }
        item
    })
}
