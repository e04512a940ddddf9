//! Compression on every core with output in order: worker threads compute
//! items (compressed chunks or grains), the calling thread writes them in
//! index order. Only a few items wait ahead of the writer, so memory stays
//! bounded whatever the disk's size.
//!
//! Items are fixed by the caller, never by the thread count, so output is
//! identical on any machine.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

struct State<T> {
    ready: BTreeMap<usize, T>,
    /// Items below this have been handed to the sink.
    sunk: usize,
    /// Set when the sink failed or a worker panicked: everyone stops.
    stop: bool,
}

/// Computes `work(i)` for `i` in `0..n` on the machine's cores and calls
/// `sink(i, result)` for each in order of `i`, on this thread. Stops at the
/// first error of `sink` and returns it.
pub(crate) fn ordered<T: Send>(
    n: usize,
    work: impl Fn(usize) -> T + Sync,
    mut sink: impl FnMut(usize, T) -> io::Result<()>,
) -> io::Result<()> {
    let threads = std::thread::available_parallelism()
        .map(|t| t.get())
        .unwrap_or(1)
        .min(n);
    if threads <= 1 {
        return (0..n).try_for_each(|i| sink(i, work(i)));
    }
    // Enough items ahead to keep every worker busy while the writer works.
    let window = 2 * threads;
    let next = AtomicUsize::new(0);
    let state = Mutex::new(State {
        ready: BTreeMap::new(),
        sunk: 0,
        stop: false,
    });
    let changed = Condvar::new();
    let lock = || state.lock().unwrap_or_else(|e| e.into_inner());

    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                // A panicking worker must not leave the writer waiting for
                // its item forever: it stops everyone, and the scope then
                // re-raises the panic.
                struct StopOnPanic<'a, T>(&'a Mutex<State<T>>, &'a Condvar);
                impl<T> Drop for StopOnPanic<'_, T> {
                    fn drop(&mut self) {
                        if std::thread::panicking() {
                            self.0.lock().unwrap_or_else(|e| e.into_inner()).stop = true;
                            self.1.notify_all();
                        }
                    }
                }
                let _guard = StopOnPanic(&state, &changed);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return;
                    }
                    {
                        let mut st = lock();
                        while i >= st.sunk + window && !st.stop {
                            st = changed.wait(st).unwrap_or_else(|e| e.into_inner());
                        }
                        if st.stop {
                            return;
                        }
                    }
                    let item = work(i);
                    let mut st = lock();
                    st.ready.insert(i, item);
                    changed.notify_all();
                }
            });
        }

        let mut result = Ok(());
        for i in 0..n {
            let item = {
                let mut st = lock();
                loop {
                    if let Some(item) = st.ready.remove(&i) {
                        st.sunk = i + 1;
                        changed.notify_all();
                        break Some(item);
                    }
                    if st.stop {
                        break None;
                    }
                    st = changed.wait(st).unwrap_or_else(|e| e.into_inner());
                }
            };
            // None: a worker panicked; the scope re-raises it on return.
            let Some(item) = item else { break };
            if let Err(e) = sink(i, item) {
                result = Err(e);
                lock().stop = true;
                changed.notify_all();
                break;
            }
        }
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_arrive_in_order() {
        let mut got = Vec::new();
        ordered(
            100,
            |i| {
                // Later items finish sooner, to shuffle completion order.
                std::thread::sleep(std::time::Duration::from_micros(
                    ((100 - i) % 7) as u64 * 50,
                ));
                i * i
            },
            |i, v| {
                got.push((i, v));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(got, (0..100).map(|i| (i, i * i)).collect::<Vec<_>>());
    }

    #[test]
    fn a_sink_error_stops_the_work() {
        let done = AtomicUsize::new(0);
        let err = ordered(
            10_000,
            |i| {
                done.fetch_add(1, Ordering::Relaxed);
                i
            },
            |i, _| {
                if i == 3 {
                    Err(io::Error::other("disk full"))
                } else {
                    Ok(())
                }
            },
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "disk full");
        assert!(done.load(Ordering::Relaxed) < 100);
    }
}
