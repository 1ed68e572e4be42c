//! Log multiplexing: one reader thread per instance pipe cuts the stream into
//! whole lines, one writer thread prefixes them and writes them to stdout and
//! to `logs/<instance>.log`.
//!
//! Readers send chunks that hold only complete lines (a final partial line is
//! completed with a newline at end of file), so the writer never has to
//! interleave partial lines; the channel is bounded, so a slow terminal slows
//! the services down instead of dropping lines. The writer flushes whenever
//! its queue is empty, which keeps interactive output live and batch output fast.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::Error;

/// Where one instance's lines come from and how they are labelled.
pub(crate) struct LogSource {
    pub(crate) name: String,
    pub(crate) color: usize,
    pub(crate) file: PathBuf,
}

pub(crate) enum LogMessage {
    /// Invariant: `bytes` is non-empty and ends with `\n`.
    Lines {
        source: Arc<LogSource>,
        at: SystemTime,
        bytes: Vec<u8>,
    },
    /// A line of the supervisor's own, without newline.
    System(String),
}

/// The writer thread and the sending side of its queue.
pub(crate) struct LogSink {
    sender: Option<SyncSender<LogMessage>>,
    thread: Option<JoinHandle<()>>,
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
const READ_SIZE: usize = 64 * 1024;

impl LogSink {
    pub(crate) fn start(style: LogStyle) -> Result<LogSink, Error> {
        // Our own descriptor for stdout, so that std's line-buffered Stdout and
        // its lock stay out of the hot path.
        // SAFETY: dup returns a fresh descriptor or -1, checked below.
        let fd = unsafe { libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3) };
        if fd < 0 {
            return Err(Error::os("duplicate stdout"));
        }
        // SAFETY: `fd` is fresh and owned by nobody else.
        let stdout = unsafe { File::from_raw_fd(fd) };
        let (sender, receiver) = mpsc::sync_channel(16);
        let thread = std::thread::Builder::new()
            .name("n2d-log-writer".into())
            .spawn(move || write_logs(receiver, stdout, style))
            .map_err(|source| Error::Os {
                what: "start the log writer thread",
                source,
            })?;
        Ok(LogSink {
            sender: Some(sender),
            thread: Some(thread),
        })
    }

    pub(crate) fn sender(&self) -> SyncSender<LogMessage> {
        self.sender.clone().expect("log sink is open until dropped")
    }

    pub(crate) fn system(&self, line: String) {
        if let Some(sender) = &self.sender {
            let _ = sender.send(LogMessage::System(line));
        }
    }
}

impl Drop for LogSink {
    fn drop(&mut self) {
        // The writer ends when every sender is gone; readers were joined before.
        self.sender = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one instance's pipe until end of file, sending whole lines. With
/// `cancel` set it stops at the first quiet moment instead, for the case where
/// an escaped process keeps the pipe open forever.
pub(crate) fn read_lines(
    pipe: File,
    source: Arc<LogSource>,
    sender: SyncSender<LogMessage>,
    cancel: Arc<AtomicBool>,
) {
    let mut buffer: Vec<u8> = Vec::with_capacity(READ_SIZE);
    loop {
        let mut poll = libc::pollfd {
            fd: pipe.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut poll, 1, 250) };
        if ready == 0 {
            if cancel.load(Ordering::Relaxed) {
                break;
            }
            continue;
        }
        if buffer.capacity() - buffer.len() < READ_SIZE / 4 {
            buffer.reserve(READ_SIZE);
        }
        let start = buffer.len();
        let spare = buffer.capacity() - start;
        // SAFETY: reading into the vector's spare capacity, then setting the length to what was read.
        let n = unsafe {
            libc::read(
                pipe.as_raw_fd(),
                buffer.as_mut_ptr().add(start).cast(),
                spare,
            )
        };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        if n == 0 {
            break;
        }
        // SAFETY: the kernel initialized `n` bytes after `start`.
        unsafe { buffer.set_len(start + n as usize) };
        let cut = match buffer[start..].iter().rposition(|&b| b == b'\n') {
            Some(i) => start + i + 1,
            None if buffer.len() >= MAX_LINE => {
                buffer.push(b'\n');
                buffer.len()
            }
            None => continue,
        };
        let rest = buffer[cut..].to_vec();
        let mut lines = std::mem::replace(&mut buffer, Vec::with_capacity(READ_SIZE));
        lines.truncate(cut);
        buffer.extend_from_slice(&rest);
        let message = LogMessage::Lines {
            source: source.clone(),
            at: SystemTime::now(),
            bytes: lines,
        };
        if sender.send(message).is_err() {
            return;
        }
    }
    if !buffer.is_empty() {
        buffer.push(b'\n');
        let _ = sender.send(LogMessage::Lines {
            source,
            at: SystemTime::now(),
            bytes: buffer,
        });
    }
}

const COLORS: [&str; 6] = ["36", "33", "32", "35", "34", "31"];

fn write_logs(receiver: Receiver<LogMessage>, stdout: File, style: LogStyle) {
    let mut out = BufWriter::with_capacity(64 * 1024, stdout);
    let mut files: HashMap<PathBuf, Option<BufWriter<File>>> = HashMap::new();
    let mut width = style.width.max(3);
    let mut clock = Clock::default();
    loop {
        let message = match receiver.try_recv() {
            Ok(message) => message,
            Err(TryRecvError::Empty) => {
                // Idle: make everything so far visible before blocking.
                let _ = out.flush();
                for file in files.values_mut().flatten() {
                    let _ = file.flush();
                }
                match receiver.recv() {
                    Ok(message) => message,
                    Err(_) => break,
                }
            }
            Err(TryRecvError::Disconnected) => break,
        };
        match message {
            LogMessage::Lines { source, at, bytes } => {
                width = width.max(source.name.len());
                let line_prefix = prefix(
                    &style,
                    &source.name,
                    COLORS[source.color % COLORS.len()],
                    width,
                );
                let stamp = style.timestamps.then(|| clock.format(at));
                let valid = std::str::from_utf8(&bytes).is_ok();
                for line in bytes.split_inclusive(|&b| b == b'\n') {
                    if let Some(stamp) = &stamp {
                        let _ = out.write_all(stamp.as_bytes());
                    }
                    let _ = out.write_all(line_prefix.as_bytes());
                    if valid {
                        let _ = out.write_all(line);
                    } else {
                        let _ = out.write_all(String::from_utf8_lossy(line).as_bytes());
                    }
                }
                if !files.contains_key(&source.file) {
                    // Truncated once per run; later spawns of the instance append.
                    let file = match File::create(&source.file) {
                        Ok(file) => Some(BufWriter::with_capacity(64 * 1024, file)),
                        Err(error) => {
                            let _ = writeln!(
                                out,
                                "{}cannot create log file {}: {error}",
                                prefix(&style, "n2d", "1", width),
                                source.file.display()
                            );
                            None
                        }
                    };
                    files.insert(source.file.clone(), file);
                }
                if let Some(Some(file)) = files.get_mut(&source.file) {
                    let _ = file.write_all(&bytes);
                }
            }
            LogMessage::System(line) => {
                if style.timestamps {
                    let _ = out.write_all(clock.format(SystemTime::now()).as_bytes());
                }
                let prefix = prefix(&style, "n2d", "1", width);
                let _ = writeln!(out, "{prefix}{line}");
            }
        }
    }
    let _ = out.flush();
    for file in files.values_mut().flatten() {
        let _ = file.flush();
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
