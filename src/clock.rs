//! Waiting for an instant precisely from a plain thread: the async timer wakes on millisecond
//! ticks and a thread sleep overshoots by tens of microseconds, so sleep until shortly before
//! the deadline and spin the rest. Used by the simulator's engine thread and the load
//! generator's pacer.

use std::time::{Duration, Instant};

/// Sleeps until `spin` before `due`, then spins until `due`.
pub fn wait_until(due: Instant, spin: Duration) {
    let now = Instant::now();
    if due > now + spin {
        std::thread::sleep(due - now - spin);
    }
    while Instant::now() < due {
        std::hint::spin_loop();
    }
}
