//! Write buffers shared by the sessions of one thread, one at a time.
//!
//! A socket's queue of framed bytes is only full between a wake-up and the
//! write that empties it, and on a healthy socket that write completes at
//! once. Kept per socket, those buffers add up to one cold buffer per
//! subscriber (80–160 MB at 5,000 subscribers mid fan-out), and every
//! frame copied into one, then read by the kernel's copy out of it, missed
//! the cache; fresh ones also cost page faults while they grew. Handed back
//! after each complete write, a thread's few buffers stay in cache for the
//! next session it runs. A socket whose write is cut short keeps its
//! buffer until the rest is written, as before.

use std::cell::RefCell;

/// Spare buffers kept per thread: sessions on one thread run one at a
/// time, so a few cover every session that is mid-write.
const SPARES: usize = 8;

/// A buffer grown past this (a catch-up's pages, a huge frame) is not
/// kept: it would hold that memory for good.
const KEEP_UP_TO: usize = 512 * 1024;

thread_local! {
    static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer, warm from an earlier write when one is spare.
pub(super) fn take() -> Vec<u8> {
    SPARE
        .with(|spare| spare.borrow_mut().pop())
        .unwrap_or_default()
}

/// Hands an emptied buffer back for the next session on this thread.
pub(super) fn give(mut buffer: Vec<u8>) {
    if buffer.capacity() == 0 || buffer.capacity() > KEEP_UP_TO {
        return;
    }
    buffer.clear();
    SPARE.with(|spare| {
        let mut spare = spare.borrow_mut();
        if spare.len() < SPARES {
            spare.push(buffer);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_taken_again_empty_with_its_memory() {
        let mut buffer = take();
        buffer.extend_from_slice(&[7; 3000]);
        let capacity = buffer.capacity();
        give(buffer);
        let again = take();
        assert!(again.is_empty());
        assert_eq!(again.capacity(), capacity);
    }

    #[test]
    fn only_a_few_buffers_of_a_bounded_size_are_kept() {
        for _ in 0..SPARES + 4 {
            give(Vec::with_capacity(100));
        }
        give(Vec::with_capacity(KEEP_UP_TO + 1));
        let kept = std::iter::from_fn(|| Some(take()))
            .take_while(|buffer| buffer.capacity() > 0)
            .count();
        assert_eq!(kept, SPARES);
    }
}
