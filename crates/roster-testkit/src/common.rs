//! Building blocks shared by every server in the kit: ports, temporary
//! directories, finding programs, running helper commands, waiting for a port
//! and a process handle that cleans up on `Drop`.
//!
//! A new server (Samba, Dovecot, ...) is usually: [`find_program`] its binary,
//! [`temp_dir`] for its state, [`try_free_port`] for each listener,
//! [`ServerProcess::spawn`] with output sent to a log file, then
//! [`ServerProcess::wait_for_ports`].

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long a server gets to exit after SIGTERM before it is SIGKILLed.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// How long we wait for a freshly started server to accept connections.
/// Generous because CI machines are shared and slapadd/initdb compete for CPU.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Ports handed out by this process. The kernel may return a port again once
/// its probe socket is closed, so two servers started in parallel tests could
/// otherwise be given the same port before either binds it.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// Locks a mutex even if a panicking test poisoned it: the data guarded here
/// (port sets, process handles) stays consistent across a panic.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Asks the kernel for a free TCP port on 127.0.0.1 (bind to port 0) that this
/// process has not handed out before.
pub fn try_free_port() -> io::Result<u16> {
    for _ in 0..64 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot bind 127.0.0.1:0 to find a free port ({e}); is the loopback interface up?"),
            )
        })?;
        let port = listener.local_addr()?.port();
        let mut guard = lock(&HANDED_OUT);
        if guard.get_or_insert_with(HashSet::new).insert(port) {
            return Ok(port);
        }
    }
    Err(io::Error::other(
        "the kernel kept returning ports this process already uses; widen net.ipv4.ip_local_port_range",
    ))
}

/// A free TCP port on 127.0.0.1, see [`try_free_port`].
///
/// This signature cannot report errors, and binding to 127.0.0.1:0 only fails
/// when there is no loopback interface at all. In that case it returns a port
/// in 20000..30000 derived from the process id, so the server that then tries
/// to bind it fails with an error message instead of this function panicking.
/// Server constructors in this crate use [`try_free_port`].
pub fn free_port() -> u16 {
    try_free_port().unwrap_or_else(|_| {
        let offset = u16::try_from(std::process::id() % 10_000).unwrap_or(0);
        20_000 + offset
    })
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16, timeout: Duration) -> io::Result<()> {
    wait_for_port_while(port, timeout, || Ok(()))
}

/// Like [`wait_for_port`] but calls `alive` between attempts so that a server
/// that died on start-up is reported at once instead of after the timeout.
pub fn wait_for_port_while(
    port: u16,
    timeout: Duration,
    alive: impl FnMut() -> io::Result<()>,
) -> io::Result<()> {
    wait_for_addr_while(
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        timeout,
        alive,
    )
}

/// Like [`wait_for_port_while`], for a server listening on another loopback address (127.0.0.2).
pub fn wait_for_addr_while(
    addr: SocketAddr,
    timeout: Duration,
    mut alive: impl FnMut() -> io::Result<()>,
) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        alive()?;
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("nothing accepted connections on {addr} within {timeout:?}"),
            ));
        }
        pause(Duration::from_millis(25));
    }
}

/// Blocks the current thread.
///
/// The workspace bans `std::thread::sleep` because it stalls async runtimes;
/// this kit is synchronous by design (it drives external processes from test
/// set-up code), so it is the one place where blocking is intended.
#[allow(clippy::disallowed_methods)]
pub(crate) fn pause(duration: Duration) {
    std::thread::sleep(duration);
}

/// A fresh temporary directory, removed when the returned value is dropped.
pub fn temp_dir(prefix: &str) -> io::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot create a temporary directory ({e}); check TMPDIR"),
            )
        })
}

/// Finds an executable by name in `$PATH` and then in `extra_dirs` (system
/// daemons live in sbin directories that are often not on a user's PATH).
/// `hint` should say how to install it; it is included in the error.
pub fn find_program(name: &str, extra_dirs: &[&str], hint: &str) -> io::Result<PathBuf> {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let extra = extra_dirs.iter().map(PathBuf::from);
    path_dirs
        .into_iter()
        .chain(extra)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{name} not found: {hint}")))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Renders a command for error messages.
pub fn describe(cmd: &Command) -> String {
    let mut out = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        out.push(' ');
        out.push_str(&arg.to_string_lossy());
    }
    out
}

/// Runs a helper command to completion (stdin closed) and returns its output,
/// or an error with the command line, exit status and stderr when it fails.
pub fn run(cmd: &mut Command) -> io::Result<Output> {
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run `{}`: {e}", describe(cmd))))?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(command_failed(cmd, &output))
    }
}

/// The error for a command that exited unsuccessfully.
pub fn command_failed(cmd: &Command, output: &Output) -> io::Error {
    io::Error::other(format!(
        "`{}` failed ({}):\n{}{}",
        describe(cmd),
        output.status,
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout),
    ))
}

/// The last `max_bytes` of a log file, for error messages. Never fails: a
/// missing log is reported inside the returned text.
pub fn log_tail(path: &Path, max_bytes: u64) -> String {
    let read = || -> io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(max_bytes)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) if text.trim().is_empty() => format!("(log {} is empty)", path.display()),
        Ok(text) => format!("last lines of {}:\n{text}", path.display()),
        Err(e) => format!("(cannot read log {}: {e})", path.display()),
    }
}

/// Opens (appending) a log file for a server's stdout and stderr.
pub fn log_stdio(path: &Path) -> io::Result<(Stdio, Stdio)> {
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let second = file.try_clone()?;
    Ok((Stdio::from(file), Stdio::from(second)))
}

/// Sends a signal to a process we started.
#[allow(unsafe_code)]
pub fn send_signal(pid: u32, signal: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| io::Error::other(format!("pid {pid} out of range")))?;
    // SAFETY: kill(2) takes plain integers and touches no memory of ours. The
    // pid is one of our own children that has not been reaped yet (callers
    // only signal before `wait`), so it cannot name an unrelated process.
    let rc = unsafe { libc::kill(pid, signal) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sends a signal to every process in a process group we created (a child spawned with
/// `CommandExt::process_group(0)`, whose pid is the group's id).
#[allow(unsafe_code)]
pub fn send_signal_to_group(pgid: u32, signal: libc::c_int) -> io::Result<()> {
    let pgid = libc::pid_t::try_from(pgid)
        .ok()
        .filter(|&p| p > 1)
        .ok_or_else(|| io::Error::other(format!("process group {pgid} out of range")))?;
    // SAFETY: kill(2) takes plain integers and touches no memory of ours. A negative pid names the
    // group; callers pass the group of a child they started in a group of its own and have not
    // reaped yet, and a group's id is not reused while any process is in it.
    let rc = unsafe { libc::kill(-pgid, signal) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A running server process. Dropping it stops the server (SIGTERM, then
/// SIGKILL after [`STOP_GRACE`]) so a failing test never leaks daemons.
#[derive(Debug)]
pub struct ServerProcess {
    name: String,
    log_path: PathBuf,
    child: Option<Child>,
}

impl ServerProcess {
    /// Spawns `cmd` with stdin closed and stdout/stderr appended to `log_path`.
    /// `name` is used in error messages.
    pub fn spawn(name: &str, cmd: &mut Command, log_path: &Path) -> io::Result<ServerProcess> {
        let (out, err) = log_stdio(log_path)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot start {name} (`{}`): {e}", describe(cmd)),
                )
            })?;
        Ok(ServerProcess {
            name: name.to_owned(),
            log_path: log_path.to_owned(),
            child: Some(child),
        })
    }

    /// Like [`ServerProcess::spawn`], but the child's stdin is a pipe whose writing end is returned.
    /// A server that exits when its stdin closes (`samba -i`) then cannot outlive the holder of that
    /// end, not even a test process killed by SIGKILL (the kernel closes its descriptors).
    pub fn spawn_with_stdin_pipe(
        name: &str,
        cmd: &mut Command,
        log_path: &Path,
    ) -> io::Result<(ServerProcess, ChildStdin)> {
        let (out, err) = log_stdio(log_path)?;
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot start {name} (`{}`): {e}", describe(cmd)),
                )
            })?;
        let stdin = child.stdin.take();
        let mut process = ServerProcess {
            name: name.to_owned(),
            log_path: log_path.to_owned(),
            child: Some(child),
        };
        match stdin {
            Some(stdin) => Ok((process, stdin)),
            None => {
                process.stop();
                Err(io::Error::other(format!("{name}: no stdin pipe")))
            }
        }
    }

    /// The process id while it is running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process has been started and not yet reaped.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(Ok(Some(_)) | Err(_)) => {
                self.child = None;
                false
            }
            None => false,
        }
    }

    /// Errors (with the log tail) if the process has already exited; meant
    /// to be polled while waiting for a server to come up.
    pub fn check_alive(&mut self) -> io::Result<()> {
        let exited = match self.child.as_mut() {
            Some(child) => child.try_wait()?,
            None => return Err(io::Error::other(format!("{} is not running", self.name))),
        };
        match exited {
            None => Ok(()),
            Some(status) => {
                self.child = None;
                Err(io::Error::other(format!(
                    "{} exited during start-up ({status}); {}",
                    self.name,
                    log_tail(&self.log_path, 4096)
                )))
            }
        }
    }

    /// Waits until every port accepts connections; on failure the error
    /// includes the server log and the process is stopped.
    pub fn wait_for_ports(&mut self, ports: &[u16], timeout: Duration) -> io::Result<()> {
        let addrs: Vec<SocketAddr> = ports
            .iter()
            .map(|&port| SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            .collect();
        self.wait_for_addrs(&addrs, timeout)
    }

    /// [`ServerProcess::wait_for_ports`] for servers on other loopback addresses.
    pub fn wait_for_addrs(&mut self, addrs: &[SocketAddr], timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        for &addr in addrs {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Err(e) = wait_for_addr_while(addr, left, || self.check_alive()) {
                self.stop();
                if e.kind() == io::ErrorKind::TimedOut {
                    return Err(io::Error::new(
                        e.kind(),
                        format!(
                            "{} did not start: {e}; {}",
                            self.name,
                            log_tail(&self.log_path, 4096)
                        ),
                    ));
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// SIGKILL now and reap, simulating a crash. Idempotent.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Errors mean the process is already gone, which is the goal.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal`, waits up to `grace` for the exit, then SIGKILLs.
    /// Returns the exit status if the process exited by itself.
    pub fn stop_with(&mut self, signal: libc::c_int, grace: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if send_signal(child.id(), signal).is_ok() {
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                match child.try_wait() {
                    Ok(Some(status)) => return Some(status),
                    Ok(None) => pause(Duration::from_millis(20)),
                    Err(_) => break,
                }
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// SIGTERM, then SIGKILL after [`STOP_GRACE`]. Idempotent.
    pub fn stop(&mut self) {
        self.stop_with(libc::SIGTERM, STOP_GRACE);
    }

    /// The log file receiving stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Makes a string safe to use as (part of) a file name.
pub(crate) fn file_stem(name: &str) -> String {
    let stem: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if stem.is_empty() {
        "unnamed".to_owned()
    } else {
        stem
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_and_bindable() {
        let a = try_free_port().unwrap();
        let b = try_free_port().unwrap();
        assert_ne!(a, b);
        // Not asserted: that `a` is still bindable. Other tests in this process start servers at the
        // same time and may take it (that race is why servers wait for their port after starting).
        assert_ne!(free_port(), 0);
    }

    #[test]
    fn wait_for_port_sees_a_listener_and_times_out_without_one() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        wait_for_port(port, Duration::from_secs(2)).unwrap();
        drop(listener);
        let err = wait_for_port(port, Duration::from_millis(100)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[test]
    fn missing_program_error_says_how_to_install() {
        let err = find_program(
            "roster-no-such-binary",
            &["/usr/sbin"],
            "apt-get install nothing",
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("roster-no-such-binary not found: apt-get install nothing")
        );
    }

    #[test]
    fn process_that_dies_is_reported_with_its_log() {
        let dir = temp_dir("roster-common-").unwrap();
        let log = dir.path().join("log");
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo boom-from-server >&2; exit 3"]);
        let mut process = ServerProcess::spawn("fake", &mut cmd, &log).unwrap();
        let port = try_free_port().unwrap();
        let err = process
            .wait_for_ports(&[port], Duration::from_secs(5))
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("fake exited during start-up"), "{msg}");
        assert!(msg.contains("boom-from-server"), "{msg}");
    }

    #[test]
    fn stop_terminates_and_is_idempotent() {
        let dir = temp_dir("roster-common-").unwrap();
        let mut cmd = Command::new("sleep");
        cmd.arg("60");
        let mut process = ServerProcess::spawn("sleep", &mut cmd, &dir.path().join("log")).unwrap();
        assert!(process.is_running());
        let status = process
            .stop_with(libc::SIGTERM, Duration::from_secs(5))
            .unwrap();
        assert!(!status.success());
        assert!(!process.is_running());
        process.stop();
        process.kill();
    }
}
