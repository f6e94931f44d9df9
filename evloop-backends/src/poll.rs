//! Placeholder, being written.
use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::time::Duration;

use crate::{Backend, Event, Interest};

/// Placeholder.
pub struct Poll;

impl Backend for Poll {
    const NAME: &'static str = "poll";
    const NATIVE_EDGE: bool = false;
    const MAX_FD: Option<RawFd> = None;
    fn new(_event_capacity: usize) -> io::Result<Self> { Ok(Poll) }
    fn register(&mut self, _fd: RawFd, _token: u64, _interest: Interest) -> io::Result<()> { unimplemented!() }
    fn modify(&mut self, _fd: RawFd, _token: u64, _interest: Interest) -> io::Result<()> { unimplemented!() }
    fn deregister(&mut self, _fd: RawFd) -> io::Result<()> { unimplemented!() }
    fn flush(&mut self) -> io::Result<()> { Ok(()) }
    fn wait(&mut self, _timeout: Option<Duration>) -> io::Result<usize> { unimplemented!() }
    fn event(&self, _i: usize) -> Event { unimplemented!() }
    fn pollable_fd(&self) -> Option<BorrowedFd<'_>> { None }
    fn reinit(&mut self) -> io::Result<()> { Ok(()) }
    fn len(&self) -> usize { 0 }
}
