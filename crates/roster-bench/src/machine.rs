//! The machine a measurement ran on and how busy it was, a process' memory and CPU time, latency
//! percentiles, and the machine's Argon2id rate with Roster's parameters.

use std::fs;
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Block, Params, Version};

/// `/proc/<pid>/stat` and `/proc/stat` count CPU time in USER_HZ ticks, which Linux fixes at 100 for user
/// space.
const TICKS_PER_SECOND: u64 = 100;

/// The CPUs this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The `p`th percentile (nearest rank) of sorted values; zero for none.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// A `/proc/<pid>/status` line in KiB (`VmRSS`, `VmHWM`); `None` once the process is gone.
pub fn proc_kib(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// User + system CPU time of a process (all its threads) so far.
pub fn process_cpu(pid: u32) -> Duration {
    process_cpu_at(&format!("/proc/{pid}/stat"))
}

/// The CPU time in a `/proc/…/stat` file.
fn process_cpu_at(path: &str) -> Duration {
    let stat = fs::read_to_string(path).expect("reading a /proc stat file");
    // "pid (comm) state ppid ...": utime and stime are fields 14 and 15, i.e. 12th and 13th after comm.
    let after_comm = stat.rsplit_once(')').expect("a /proc stat line").1;
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND)
}

/// User + system CPU time of a server process that forks a process per client (PostgreSQL): its own, its
/// live children's, and its exited children's (which the kernel adds to the parent's `cutime`/`cstime`
/// when it reaps them), so that a backend counts whether or not it has exited by the second reading.
pub fn process_tree_cpu(pid: u32) -> Duration {
    let fields = |path: &str| -> Option<Vec<u64>> {
        let stat = fs::read_to_string(path).ok()?;
        // "pid (comm) state ppid ...": after comm, ppid is the 2nd field, utime..cstime the 12th to 15th.
        let after_comm = stat.rsplit_once(')')?.1;
        let f: Vec<&str> = after_comm.split_whitespace().collect();
        [1, 11, 12, 13, 14]
            .iter()
            .map(|&i| f.get(i).and_then(|v| v.parse().ok()))
            .collect()
    };
    let own = fields(&format!("/proc/{pid}/stat")).expect("the server process is running");
    let mut ticks: u64 = own[1..].iter().sum();
    for entry in fs::read_dir("/proc").expect("reading /proc").flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // A child may exit between the listing and the read: then its time is in the parent's cutime.
        if let Some(f) = fields(&format!("/proc/{child}/stat"))
            && f[0] == u64::from(pid)
        {
            ticks += f[1] + f[2];
        }
    }
    Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND)
}

/// CPU time the whole machine has spent busy (not idle or waiting for I/O) since boot, all CPUs.
pub fn machine_busy() -> Duration {
    let stat = fs::read_to_string("/proc/stat").expect("reading /proc/stat");
    let fields: Vec<u64> = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .expect("a cpu line in /proc/stat")
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().expect("a tick count"))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user)
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields[3] + fields[4];
    Duration::from_millis((total - idle) * 1000 / TICKS_PER_SECOND)
}

pub fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

pub fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into())
}

pub fn memory_total() -> String {
    fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| format!("{:.1} GiB RAM", kb / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown RAM".into())
}

/// A command's standard output, trimmed; empty when it failed to run.
pub fn output_line(cmd: &mut Command) -> String {
    cmd.stderr(Stdio::null())
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// The checked-out revision, e.g. "c422f5e" or "c422f5e (with uncommitted changes)".
pub fn revision() -> String {
    let revision = output_line(Command::new("git").args(["rev-parse", "--short", "HEAD"]));
    let dirty =
        !output_line(Command::new("git").args(["status", "--porcelain", "--untracked-files=no"]))
            .is_empty();
    if dirty {
        format!("{revision} (with uncommitted changes)")
    } else {
        revision
    }
}

/// "2 CPUs, <model>, 7.8 GiB RAM".
pub fn describe() -> String {
    format!("{} CPUs, {}, {}", cores(), cpu_model(), memory_total())
}

/// The CPU time the machine spent busy over a stretch of wall time; see [`Busy::share`].
#[derive(Debug, Clone, Copy)]
pub struct Busy {
    pub cpu: Duration,
    pub wall: Duration,
}

impl Busy {
    /// Starts counting.
    pub fn start() -> BusyMeter {
        BusyMeter {
            cpu: machine_busy(),
            at: Instant::now(),
        }
    }

    /// The busy CPU time as a share of all the machine's CPUs over the wall time, 0 to 1.
    pub fn share(&self) -> f64 {
        self.cpu.as_secs_f64() / (self.wall.as_secs_f64() * cores() as f64)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct BusyMeter {
    cpu: Duration,
    at: Instant,
}

impl BusyMeter {
    pub fn stop(&self) -> Busy {
        Busy {
            cpu: machine_busy().saturating_sub(self.cpu),
            wall: self.at.elapsed(),
        }
    }
}

/// Waits until the machine has been nearly idle for `window` (busy under `max_share` of its CPUs), at
/// most `max_wait`; returns the share of the last window. For a measurement to start when whatever else
/// runs on a shared machine pauses, rather than only when its load average (a minute's mean) says so.
pub fn wait_until_idle(max_share: f64, window: Duration, max_wait: Duration) -> f64 {
    let started = Instant::now();
    loop {
        let meter = Busy::start();
        std::thread::sleep(window);
        let share = meter.stop().share();
        if share < max_share || started.elapsed() >= max_wait {
            return share;
        }
    }
}

/// The user + system CPU time of the calling thread so far.
pub fn thread_cpu() -> Duration {
    process_cpu_at("/proc/thread-self/stat")
}

/// The machine's Argon2id rate: see [`argon2_rate`].
#[derive(Debug, Clone, Copy)]
pub struct Argon2Rate {
    /// Computations a second, all threads together: what the machine gave them.
    pub per_second: f64,
    /// The CPU time one computation took (the threads' CPU time over their computations): what one costs,
    /// however busy the machine was.
    pub cpu_each: Duration,
    /// The share of the CPUs the threads got, 0 to 1.
    pub cpu_share: f64,
}

/// Argon2id verifications a second this machine computes with `threads` threads for about `duration`,
/// each thread in a buffer of its own, as Roster's password pool runs them: the parameters of
/// `crates/roster-app/src/passwords.rs` (`Params::DEFAULT`: m = 19,456 KiB, t = 2, p = 1; Argon2id,
/// version 0x13), which its hashes, its verifications and its dummy verification all use. A verification
/// is that computation plus a comparison, so this is the most logons a second Roster can check.
pub fn argon2_rate(threads: usize, duration: Duration) -> Argon2Rate {
    let start = Arc::new(Barrier::new(threads));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let start = start.clone();
            std::thread::spawn(move || {
                let params = Params::DEFAULT;
                let mut memory = vec![Block::new(); params.block_count()];
                let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
                let password = format!("pw-user{t:06}");
                let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
                let mut compute = || {
                    argon2
                        .hash_password_into_with_memory(
                            password.as_bytes(),
                            b"bench-ceiling-sa",
                            &mut out,
                            &mut memory,
                        )
                        .expect("an Argon2id computation");
                };
                // One computation first: the buffer's pages are touched before the clock starts.
                compute();
                start.wait();
                let (started, cpu) = (Instant::now(), thread_cpu());
                let mut done = 0u32;
                while started.elapsed() < duration {
                    compute();
                    done += 1;
                }
                (done, started.elapsed(), thread_cpu().saturating_sub(cpu))
            })
        })
        .collect();
    let results: Vec<(u32, Duration, Duration)> =
        workers.into_iter().map(|w| w.join().unwrap()).collect();
    let done: u32 = results.iter().map(|r| r.0).sum();
    let cpu: Duration = results.iter().map(|r| r.2).sum();
    let wall: Duration = results.iter().map(|r| r.1).sum();
    Argon2Rate {
        per_second: results
            .iter()
            .map(|(d, wall, _)| f64::from(*d) / wall.as_secs_f64())
            .sum(),
        cpu_each: cpu / done.max(1),
        cpu_share: cpu.as_secs_f64() / wall.as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&values, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&values, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&values, 100.0), Duration::from_millis(100));
        assert_eq!(percentile(&values[..1], 99.0), Duration::from_millis(1));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }

    #[test]
    fn the_argon2_rate_counts_computations() {
        let rate = argon2_rate(1, Duration::from_millis(200));
        assert!(rate.per_second > 0.0, "{rate:?}");
    }
}
