//! Waiting for an instant precisely from a plain thread: the async timer wakes on millisecond
//! ticks and a thread sleep overshoots by tens of microseconds, so sleep until shortly before
//! the deadline and spin the rest. Used by the simulator's engine thread and the load
//! generator's pacer.

use std::time::{Duration, Instant};

/// Seconds since the Unix epoch, as scrape times and history points are stamped (0 on a clock
/// set before 1970).
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Asks the kernel to wake this thread's sleeps on time: Linux pads each sleep by the thread's
/// timer slack (50 µs by default) to batch wake-ups; a pacer wants its deadlines instead.
/// Measured on the 2-core VM: a 100 µs sleep overshoots by 76 µs at the median with the
/// default slack and by 28 µs with a slack of 1 ns. Best effort: elsewhere it does nothing.
pub fn tighten_timer_slack() {
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1));
}

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

/// An async timer that wakes within microseconds of its deadline: tokio's own timer rounds
/// up to millisecond ticks, too coarse for pacing thousands of requests a second. On Linux a
/// `timerfd` registered with the runtime's reactor (no extra thread, no spinning); elsewhere
/// tokio's timer.
pub struct PreciseTimer {
    #[cfg(target_os = "linux")]
    fd: tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>,
}

impl PreciseTimer {
    /// A timer on the current runtime's reactor.
    #[cfg(target_os = "linux")]
    pub fn new() -> std::io::Result<PreciseTimer> {
        use rustix::time::{TimerfdClockId, TimerfdFlags, timerfd_create};
        let flags = TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC;
        let fd = timerfd_create(TimerfdClockId::Monotonic, flags)?;
        // Deprecated because a registered descriptor must not be closed or replaced behind
        // the reactor's back; this one is an `OwnedFd` moved into the `AsyncFd`, closed only
        // when it drops, so the safe constructor is sound here.
        #[allow(deprecated)]
        let fd = tokio::io::unix::AsyncFd::with_interest(fd, tokio::io::Interest::READABLE)?;
        Ok(PreciseTimer { fd })
    }

    /// A timer on the current runtime.
    #[cfg(not(target_os = "linux"))]
    pub fn new() -> std::io::Result<PreciseTimer> {
        Ok(PreciseTimer {})
    }

    /// Resolves at `due` (at once if it has passed).
    #[cfg(target_os = "linux")]
    pub async fn sleep_until(&self, due: Instant) -> std::io::Result<()> {
        use rustix::time::{Itimerspec, TimerfdTimerFlags, Timespec, timerfd_settime};
        loop {
            let now = Instant::now();
            if now >= due {
                return Ok(());
            }
            let left = Timespec::try_from(due - now).map_err(std::io::Error::other)?;
            let zero = Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            let spec = Itimerspec {
                it_interval: zero,
                it_value: left,
            };
            timerfd_settime(self.fd.get_ref(), TimerfdTimerFlags::empty(), &spec)?;
            let mut ready = self.fd.readable().await?;
            // Reading the expiry count re-arms the edge; nothing to read means a stale wake.
            let mut expirations = [0u8; 8];
            match rustix::io::read(ready.get_inner(), &mut expirations) {
                Ok(_) | Err(rustix::io::Errno::AGAIN) => ready.clear_ready(),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Resolves at `due` (at once if it has passed), to tokio's timer's precision.
    #[cfg(not(target_os = "linux"))]
    pub async fn sleep_until(&self, due: Instant) -> std::io::Result<()> {
        tokio::time::sleep_until(due.into()).await;
        Ok(())
    }
}
