//! Log multiplexing on the loop's thread: a [`LogPipe`] per instance cuts
//! its stream into whole lines, and the one [`LogOutput`] prefixes them into
//! a buffer for stdout and appends them raw to `logs/<instance>.log`.
//!
//! Only whole lines reach the output (a final partial line is completed
//! with a newline at end of file), so lines of different instances never
//! interleave. Writes to stdout block: a slow terminal slows the loop and,
//! through the full pipes, the services, instead of dropping lines. The
//! buffer is flushed when it is full and whenever the loop is about to
//! wait, which keeps interactive output live and batch output fast.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::reactor::{self, ReadOutcome};
use crate::Error;

/// Where one instance's lines come from and how they are labelled.
pub(crate) struct LogSource {
    pub(crate) name: String,
    pub(crate) color: usize,
    pub(crate) file: PathBuf,
}

pub(crate) struct LogStyle {
    pub(crate) color: bool,
    pub(crate) timestamps: bool,
    /// Initial prefix width; grows when a longer name shows up.
    pub(crate) width: usize,
}

/// Longest run of bytes without a newline that is kept as one line; a longer
/// one is cut so that a service cannot make the supervisor's memory grow unboundedly.
const MAX_LINE: usize = 1 << 20;
/// One read from a log pipe; also the output buffer's flush threshold.
pub(crate) const CHUNK: usize = 64 * 1024;

/// One instance's log pipe and the partial line read from it so far.
pub(crate) struct LogPipe {
    fd: OwnedFd,
    source: Rc<LogSource>,
    /// Invariant: holds no newline.
    partial: Vec<u8>,
}

/// What reading a log pipe found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Drained {
    /// Nothing more for now; the pipe is still open.
    Open,
    /// End of file: every writer is gone, the last partial line was emitted.
    Ended,
}

impl LogPipe {
    pub(crate) fn new(fd: OwnedFd, source: Rc<LogSource>) -> LogPipe {
        LogPipe {
            fd,
            source,
            partial: Vec::new(),
        }
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Reads at most `reads` chunks (fairness: a flooding instance yields to
    /// the others between chunks) and emits the whole lines among them.
    pub(crate) fn read(
        &mut self,
        reads: usize,
        scratch: &mut Vec<u8>,
        out: &mut LogOutput,
    ) -> Drained {
        for _ in 0..reads {
            scratch.clear();
            match reactor::read_into(self.fd(), scratch, CHUNK) {
                ReadOutcome::Data => self.cut(scratch, out),
                ReadOutcome::WouldBlock => return Drained::Open,
                ReadOutcome::End => {
                    self.finish(out);
                    return Drained::Ended;
                }
            }
        }
        Drained::Open
    }

    /// Emits the partial line, completed with a newline; for end of file,
    /// and for a run that ends while an escaped process holds the pipe.
    pub(crate) fn finish(&mut self, out: &mut LogOutput) {
        if !self.partial.is_empty() {
            self.partial.push(b'\n');
            out.lines(&self.source, &self.partial);
            self.partial = Vec::new();
        }
    }

    fn cut(&mut self, data: &[u8], out: &mut LogOutput) {
        let Some(last) = data.iter().rposition(|&b| b == b'\n') else {
            self.partial.extend_from_slice(data);
            if self.partial.len() >= MAX_LINE {
                self.finish(out);
            }
            return;
        };
        let mut whole = &data[..=last];
        if !self.partial.is_empty() {
            let first = whole
                .iter()
                .position(|&b| b == b'\n')
                .expect("ends with one");
            self.partial.extend_from_slice(&whole[..=first]);
            out.lines(&self.source, &self.partial);
            // Keep a small buffer for the next partial line, not a huge one.
            if self.partial.capacity() > CHUNK {
                self.partial = Vec::new();
            } else {
                self.partial.clear();
            }
            whole = &whole[first + 1..];
        }
        if !whole.is_empty() {
            out.lines(&self.source, whole);
        }
        self.partial.extend_from_slice(&data[last + 1..]);
    }
}

/// The prefixed output on stdout and the per-instance log files.
pub(crate) struct LogOutput {
    stdout: File,
    buffer: Vec<u8>,
    /// Log files by path; `None` when creating it failed (said once).
    files: HashMap<PathBuf, Option<File>>,
    style: LogStyle,
    width: usize,
    clock: Clock,
}

const COLORS: [&str; 6] = ["36", "33", "32", "35", "34", "31"];

impl LogOutput {
    pub(crate) fn new(style: LogStyle) -> Result<LogOutput, Error> {
        // Our own descriptor for stdout, so that std's line-buffered Stdout and
        // its lock stay out of the hot path.
        // SAFETY: dup returns a fresh descriptor or -1, checked below.
        let fd = unsafe { libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3) };
        if fd < 0 {
            return Err(Error::os("duplicate stdout"));
        }
        Ok(LogOutput {
            // SAFETY: `fd` is fresh and owned by nobody else.
            stdout: unsafe { File::from_raw_fd(fd) },
            buffer: Vec::new(),
            files: HashMap::new(),
            width: style.width.max(3),
            style,
            clock: Clock::default(),
        })
    }

    /// Whether output waits in the buffer.
    pub(crate) fn pending(&self) -> bool {
        !self.buffer.is_empty()
    }

    /// Writes out the buffer (blocking: back-pressure, never loss).
    pub(crate) fn flush(&mut self) {
        if !self.buffer.is_empty() {
            // A closed stdout loses the terminal copy; the log files keep theirs.
            let _ = self.stdout.write_all(&self.buffer);
            self.buffer.clear();
        }
    }

    /// Whole lines of one instance. Invariant: `bytes` is non-empty and ends with `\n`.
    pub(crate) fn lines(&mut self, source: &LogSource, bytes: &[u8]) {
        self.width = self.width.max(source.name.len());
        let prefix = prefix(
            &self.style,
            &source.name,
            COLORS[source.color % COLORS.len()],
            self.width,
        );
        let stamp = self
            .style
            .timestamps
            .then(|| self.clock.format(SystemTime::now()).to_owned());
        let valid = std::str::from_utf8(bytes).is_ok();
        for line in bytes.split_inclusive(|&b| b == b'\n') {
            if let Some(stamp) = &stamp {
                self.buffer.extend_from_slice(stamp.as_bytes());
            }
            self.buffer.extend_from_slice(prefix.as_bytes());
            if valid {
                self.buffer.extend_from_slice(line);
            } else {
                self.buffer
                    .extend_from_slice(String::from_utf8_lossy(line).as_bytes());
            }
        }
        self.write_file(source, bytes);
        if self.buffer.len() >= CHUNK {
            self.flush();
        }
    }

    /// A line of the supervisor's own, without newline.
    pub(crate) fn system(&mut self, line: &str) {
        if self.style.timestamps {
            let stamp = self.clock.format(SystemTime::now()).to_owned();
            self.buffer.extend_from_slice(stamp.as_bytes());
        }
        let prefix = prefix(&self.style, "n2d", "1", self.width);
        self.buffer.extend_from_slice(prefix.as_bytes());
        self.buffer.extend_from_slice(line.as_bytes());
        self.buffer.push(b'\n');
        if self.buffer.len() >= CHUNK {
            self.flush();
        }
    }

    fn write_file(&mut self, source: &LogSource, bytes: &[u8]) {
        if !self.files.contains_key(&source.file) {
            // Truncated once per run; later spawns of the instance append.
            let file = match File::create(&source.file) {
                Ok(file) => Some(file),
                Err(error) => {
                    self.system(&format!(
                        "cannot create log file {}: {error}",
                        source.file.display()
                    ));
                    None
                }
            };
            self.files.insert(source.file.clone(), file);
        }
        // Unbuffered: the pipe already hands over chunks of up to 64 KiB,
        // and a buffer per instance would cost memory for every instance.
        if let Some(Some(file)) = self.files.get_mut(&source.file) {
            let _ = file.write_all(bytes);
        }
    }
}

impl Drop for LogOutput {
    fn drop(&mut self) {
        self.flush();
    }
}

fn prefix(style: &LogStyle, name: &str, color: &str, width: usize) -> String {
    if style.color {
        format!("\x1b[{color}m{name:<width$} |\x1b[0m ")
    } else {
        format!("{name:<width$} | ")
    }
}

/// Local `HH:MM:SS ` stamps, formatted once per second.
#[derive(Default)]
struct Clock {
    second: u64,
    text: String,
}

impl Clock {
    fn format(&mut self, at: SystemTime) -> &str {
        let second = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if second != self.second || self.text.is_empty() {
            self.second = second;
            let time = second as libc::time_t;
            // SAFETY: localtime_r fills the zeroed struct from a valid time_t.
            let mut tm: libc::tm = unsafe { std::mem::zeroed() };
            unsafe { libc::localtime_r(&time, &mut tm) };
            self.text = format!("{:02}:{:02}:{:02} ", tm.tm_hour, tm.tm_min, tm.tm_sec);
        }
        &self.text
    }
}
