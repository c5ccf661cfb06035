//! The pipes that `splice` moves bytes through, kept for reuse.
//!
//! A direction holds a pipe only while it moves a burst, and gives it back (empty) when its socket has nothing
//! more to read: so an idle connection holds no pipe, a busy proxy needs about as many pipes as it has
//! directions moving bytes at the same moment, and most bursts cost no `pipe2`/`close` calls. Pipes count
//! against descriptors and, for a user that is not root, against `/proc/sys/fs/pipe-user-pages-soft`
//! (64 MiB of pipe buffers by default); a pipe per connection would reach that after a few hundred
//! connections.

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::unistd::pipe2;
use std::os::fd::OwnedFd;
use std::sync::Mutex;

/// What a pipe is asked to hold: 256 KiB, where the default 64 KiB cost 10-15 % of the opaque TCP benchmark's
/// throughput (fewer, larger bursts let the peers read more per wake-up), and 1 MiB did no better. A user
/// over its pipe allowance keeps the default size.
const CAPACITY: i32 = 256 * 1024;

/// Pipes smaller than this are not worth it: the buffered copy moves 16 KiB per read and write, and a user
/// over `pipe-user-pages-soft` gets new pipes of two pages.
const SMALLEST: usize = 16 * 1024;

/// An empty pipe: `output` is read from, `input` written to.
pub struct Pipe {
    pub output: OwnedFd,
    pub input: OwnedFd,
}

impl Pipe {
    /// A new pipe, or None when none can be made (out of descriptors) or it would be too small.
    fn new() -> Option<Pipe> {
        let (output, input) = pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).ok()?;
        // Refused beyond `/proc/sys/fs/pipe-max-size` or the user's allowance: the default size then serves.
        let _ = fcntl(&input, FcntlArg::F_SETPIPE_SZ(CAPACITY));
        let capacity = fcntl(&input, FcntlArg::F_GETPIPE_SZ).ok()?;
        (usize::try_from(capacity).ok()? >= SMALLEST).then_some(Pipe { output, input })
    }
}

/// Empty pipes waiting for a burst.
pub struct Pool {
    idle: Mutex<Vec<Pipe>>,
    /// At most this many are kept; more are closed when given back.
    kept: usize,
}

/// The process's pool: enough for the bursts a proxy's workers move at the same moment.
pub static PIPES: Pool = Pool::new(64);

impl Pool {
    pub const fn new(kept: usize) -> Pool {
        Pool {
            idle: Mutex::new(Vec::new()),
            kept,
        }
    }

    /// An empty pipe, kept or new; None when no pipe can be had.
    pub fn take(&self) -> Option<Pipe> {
        let kept = self.lock().pop();
        kept.or_else(Pipe::new)
    }

    /// Takes back a pipe that is empty (never one with bytes left in it: drop that one).
    pub fn give(&self, pipe: Pipe) {
        let mut idle = self.lock();
        if idle.len() < self.kept {
            idle.push(pipe);
        } else {
            drop(idle);
            drop(pipe);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Pipe>> {
        // Nothing can be left half-done under this lock: a poisoned one is still whole.
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_given_back_pipe_is_reused_and_no_more_than_kept_are_held() {
        let pool = Pool::new(1);
        let first = pool.take().unwrap();
        let second = pool.take().unwrap();
        let reused = first.input.as_raw_fd();
        assert_ne!(reused, second.input.as_raw_fd());
        pool.give(first);
        pool.give(second);
        assert_eq!(pool.lock().len(), 1, "only `kept` pipes stay");
        assert_eq!(pool.take().unwrap().input.as_raw_fd(), reused);
    }

    #[test]
    fn pipes_are_enlarged() {
        let pipe = Pipe::new().unwrap();
        let capacity = fcntl(&pipe.input, FcntlArg::F_GETPIPE_SZ).unwrap();
        // Below `pipe-max-size` (1 MiB by default) and, for a user that is not root, its allowance.
        assert_eq!(capacity, CAPACITY);
    }
}
