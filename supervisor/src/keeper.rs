//! Spawning one service instance under a keeper process, so that no process
//! of the run outlives the supervisor.
//!
//! `fork` gives a keeper; the keeper forks the service, which becomes the
//! leader of a new process group and `exec`s. The keeper then waits on two
//! things only: its command pipe from the supervisor, and `SIGCHLD`.
//!
//! - A byte on the command pipe is a signal number: the keeper sends it to the
//!   service's whole process group (stop signal, then `SIGKILL`).
//! - End of file on the command pipe means the supervisor is gone, whether it
//!   dropped the pipe or was `SIGKILL`ed (the kernel closes its descriptors):
//!   the keeper `SIGKILL`s the group.
//! - When the service's main process exits, the keeper `SIGKILL`s what is left
//!   of its group (as systemd's `KillMode=control-group`), reaps every member
//!   — it is a child subreaper, so orphaned grandchildren are re-parented to
//!   it — and only then reports the exit status on its report pipe. So when
//!   the supervisor hears "exited", nothing of that instance runs any more.
//!
//! The service also gets `PR_SET_PDEATHSIG = SIGKILL` towards the keeper, in
//! case the keeper itself is killed. A process that leaves the group on
//! purpose (`setsid`, `setpgid`) escapes; supervised services must not daemonize.
//!
//! Between `fork` and `exec` the child of a multi-threaded process may only
//! make async-signal-safe calls, so everything (argument vectors, paths) is
//! prepared before the fork and the keeper uses raw system calls only: no
//! allocation, no locks, no Rust standard library I/O.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::Error;

/// Everything the keeper needs, prepared before `fork`.
pub(crate) struct LaunchPlan {
    program: CString,
    argv: Vec<CString>,
    /// Added to the [`Inherited`] environment.
    extra_env: Vec<CString>,
    dir: CString,
}

/// The supervisor's environment as every service inherits it, copied once
/// per run (not once per spawn: a thousand copies of a large environment
/// would be most of the supervisor's heap), less the variables that each
/// service gets its own value of.
pub(crate) struct Inherited(Vec<CString>);

impl Inherited {
    pub(crate) fn capture(overridden: &[&str]) -> Inherited {
        Inherited(
            std::env::vars_os()
                .filter(|(key, _)| !overridden.iter().any(|k| OsStr::new(k) == key))
                .filter_map(|(key, value)| {
                    let mut pair: OsString = key;
                    pair.push("=");
                    pair.push(value);
                    // The environment holds C strings: never a NUL.
                    CString::new(pair.into_vec()).ok()
                })
                .collect(),
        )
    }
}

/// A running keeper as the supervisor sees it.
pub(crate) struct Keeper {
    pub(crate) pid: libc::pid_t,
    // Dropping it is the "supervisor is gone" message: the keeper kills the group.
    command: OwnedFd,
}

/// The supervisor's ends of the keeper's pipes, both non-blocking.
pub(crate) struct KeeperPipes {
    /// The service's pid, then its wait status, each 4 native-endian bytes.
    pub(crate) report: OwnedFd,
    /// The service's stdout and stderr, merged.
    pub(crate) log: OwnedFd,
}

impl LaunchPlan {
    /// Resolves the program (relative to `dir` when it holds a `/`, else on
    /// `PATH`) and builds the C strings; `extra_env` is added to the
    /// [`Inherited`] environment, which must leave out its keys.
    pub(crate) fn new(
        dir: &Path,
        command: &[String],
        extra_env: &[(&str, &str)],
    ) -> Result<LaunchPlan, String> {
        let program = resolve_program(dir, &command[0])?;
        let c =
            |bytes: &[u8]| CString::new(bytes).map_err(|_| "a NUL byte in the command".to_owned());
        let argv = command
            .iter()
            .map(|arg| c(arg.as_bytes()))
            .collect::<Result<Vec<_>, _>>()?;
        let extra_env = extra_env
            .iter()
            .map(|(key, value)| c(format!("{key}={value}").as_bytes()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LaunchPlan {
            program: c(program.as_os_str().as_bytes())?,
            argv,
            extra_env,
            dir: c(dir.as_os_str().as_bytes())?,
        })
    }
}

impl Keeper {
    /// Forks the keeper, which forks and `exec`s the service.
    pub(crate) fn spawn(
        plan: &LaunchPlan,
        inherited: &Inherited,
    ) -> Result<(Keeper, KeeperPipes), Error> {
        let (command_read, command_write) = pipe()?;
        let (report_read, report_write) = pipe()?;
        let (log_read, log_write) = pipe()?;
        // A bigger pipe means fewer wake-ups for chatty services; best effort.
        unsafe { libc::fcntl(log_read.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
        let devnull = File::options()
            .read(true)
            .write(true)
            .open("/dev/null")
            .map_err(|source| Error::io("open", "/dev/null", source))?;
        let mut argv: Vec<*const libc::c_char> = plan.argv.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = (inherited.0.iter())
            .chain(&plan.extra_env)
            .map(|e| e.as_ptr())
            .collect();
        envp.push(std::ptr::null());
        let fds = KeeperFds {
            command: command_read.as_raw_fd(),
            report: report_write.as_raw_fd(),
            log: log_write.as_raw_fd(),
            devnull: devnull.as_raw_fd(),
        };
        // SAFETY: the child only runs `keeper_main`, which makes async-signal-safe calls.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(Error::os("fork a keeper process"));
        }
        if pid == 0 {
            // SAFETY: pointers stay valid: the child has a copy of our memory.
            unsafe {
                keeper_main(
                    &fds,
                    plan.program.as_ptr(),
                    argv.as_ptr(),
                    envp.as_ptr(),
                    plan.dir.as_ptr(),
                )
            }
        }
        drop((command_read, report_write, log_write, devnull));
        crate::reactor::set_nonblocking(report_read.as_raw_fd());
        crate::reactor::set_nonblocking(log_read.as_raw_fd());
        Ok((
            Keeper {
                pid,
                command: command_write,
            },
            KeeperPipes {
                report: report_read,
                log: log_read,
            },
        ))
    }

    /// Asks the keeper to send `signal` to the service's process group. A
    /// keeper that already exited makes this a no-op (the pipe is broken).
    pub(crate) fn signal_group(&self, signal: i32) {
        let byte = signal as u8;
        // SAFETY: writing one byte from a valid buffer to a descriptor we own.
        unsafe { libc::write(self.command.as_raw_fd(), (&byte as *const u8).cast(), 1) };
    }
}

fn resolve_program(dir: &Path, program: &str) -> Result<PathBuf, String> {
    let is_executable = |path: &Path| {
        path.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let path = dir.join(program);
        if is_executable(&path) {
            return Ok(path);
        }
        return Err(format!("{program} is not an executable file"));
    }
    let search = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&search)
        .map(|folder| dir.join(folder).join(program))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| format!("{program} is not found on PATH"))
}

pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd), Error> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Error::os("create a pipe"));
    }
    // SAFETY: pipe2 succeeded, so both descriptors are fresh and ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

struct KeeperFds {
    command: RawFd,
    report: RawFd,
    log: RawFd,
    devnull: RawFd,
}

/// Signals a terminal or a process-group kill aimed at the supervisor would
/// also deliver to the keeper, which shares its process group.
const KEEPER_IGNORES: [i32; 5] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGPIPE,
];

/// The keeper process. Async-signal-safe calls only (see the module doc).
unsafe fn keeper_main(
    fds: &KeeperFds,
    program: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    dir: *const libc::c_char,
) -> ! {
    close_all_but(&mut [fds.command, fds.report, fds.log, fds.devnull]);
    // Handlers the supervisor installed are meaningless here.
    for signal in 1..libc::SIGRTMAX() {
        if signal != libc::SIGKILL && signal != libc::SIGSTOP {
            libc::signal(signal, libc::SIG_DFL);
        }
    }
    for signal in KEEPER_IGNORES {
        libc::signal(signal, libc::SIG_IGN);
    }
    let mut sigchld: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut sigchld);
    libc::sigaddset(&mut sigchld, libc::SIGCHLD);
    libc::sigprocmask(libc::SIG_SETMASK, &sigchld, std::ptr::null_mut());
    let sigchld_fd = libc::signalfd(-1, &sigchld, libc::SFD_CLOEXEC);
    if sigchld_fd < 0 || libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0 {
        libc::_exit(126);
    }
    if libc::chdir(dir) != 0 {
        libc::_exit(126);
    }
    let keeper = libc::getpid();
    let service = libc::fork();
    if service < 0 {
        libc::_exit(126);
    }
    if service == 0 {
        libc::setpgid(0, 0);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        if libc::getppid() != keeper {
            libc::_exit(126);
        }
        for signal in KEEPER_IGNORES {
            libc::signal(signal, libc::SIG_DFL);
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::dup2(fds.devnull, 0);
        libc::dup2(fds.log, 1);
        libc::dup2(fds.log, 2);
        for fd in [fds.command, fds.report, fds.log, fds.devnull, sigchld_fd] {
            if fd > 2 {
                libc::close(fd);
            }
        }
        libc::execve(program, argv, envp);
        let message = b"n2d: cannot execute the service's program\n";
        libc::write(2, message.as_ptr().cast(), message.len());
        libc::_exit(127);
    }
    // Also here, so that signals sent right after the report reach the group.
    libc::setpgid(service, service);
    libc::close(fds.log);
    libc::close(fds.devnull);
    write_all(fds.report, &service.to_ne_bytes());

    let mut status: libc::c_int = 0;
    let mut supervisor_alive = true;
    'watch: loop {
        let mut polled = [
            libc::pollfd {
                fd: fds.command,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: sigchld_fd,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        if libc::poll(polled.as_mut_ptr(), 2, -1) < 0 {
            continue;
        }
        if polled[0].revents != 0 {
            let mut byte = 0u8;
            match libc::read(fds.command, (&mut byte as *mut u8).cast(), 1) {
                1 => {
                    libc::kill(-service, i32::from(byte));
                }
                0 => {
                    supervisor_alive = false;
                    libc::kill(-service, libc::SIGKILL);
                }
                _ => {}
            }
        }
        if polled[1].revents != 0 || !supervisor_alive {
            let mut info: libc::signalfd_siginfo = std::mem::zeroed();
            if polled[1].revents != 0 {
                libc::read(
                    sigchld_fd,
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    std::mem::size_of::<libc::signalfd_siginfo>(),
                );
            }
            loop {
                let mut reaped_status = 0;
                let reaped = libc::waitpid(-1, &mut reaped_status, libc::WNOHANG);
                if reaped == service {
                    status = reaped_status;
                    break 'watch;
                }
                if reaped <= 0 {
                    break;
                }
            }
            if !supervisor_alive {
                // Wait for the killed service itself, then fall through to the group sweep.
                while libc::waitpid(service, &mut status, 0) < 0
                    && *libc::__errno_location() == libc::EINTR
                {}
                break 'watch;
            }
        }
    }
    // Sweep the group: everything left is killed and reaped before we report.
    libc::kill(-service, libc::SIGKILL);
    loop {
        let mut ignored = 0;
        if libc::waitpid(-service, &mut ignored, 0) < 0 && *libc::__errno_location() != libc::EINTR
        {
            break;
        }
    }
    if supervisor_alive {
        write_all(fds.report, &status.to_ne_bytes());
    }
    libc::_exit(0)
}

unsafe fn write_all(fd: RawFd, bytes: &[u8]) {
    let mut written = 0;
    while written < bytes.len() {
        let n = libc::write(fd, bytes[written..].as_ptr().cast(), bytes.len() - written);
        if n < 0 {
            if *libc::__errno_location() == libc::EINTR {
                continue;
            }
            return;
        }
        written += n as usize;
    }
}

/// Closes every descriptor above 2 except `keep`, without allocating.
unsafe fn close_all_but(keep: &mut [RawFd]) {
    keep.sort_unstable();
    let mut next: libc::c_uint = 3;
    for &fd in keep.iter() {
        let fd = fd as libc::c_uint;
        if fd > next {
            close_range(next, fd - 1);
        }
        next = next.max(fd + 1);
    }
    close_range(next, libc::c_uint::MAX);
}

unsafe fn close_range(first: libc::c_uint, last: libc::c_uint) {
    if libc::syscall(libc::SYS_close_range, first, last, 0) != 0 {
        // Kernels before 5.9: close one by one up to a sane bound.
        let mut fd = first;
        while fd <= last.min(65_536) {
            libc::close(fd as i32);
            fd += 1;
        }
    }
}
