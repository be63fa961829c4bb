//! Local passwords: Argon2id, hashed and verified off the async runtime (it is slow on purpose), through a
//! bounded pool.
//!
//! Every Argon2id computation (a logon's verification, the dummy one for unknown names and directory users,
//! hashing a new password) runs on one of the [`PasswordPool`]'s `concurrent` worker threads (about the
//! number of cores: more would only share the same cores and hold more memory). Each worker keeps its own
//! memory buffer for the next computation, so Argon2id's 19 MiB per computation is allocated once per worker
//! instead of once per logon. Without the bound, a flood of failed logons ran one computation per request at
//! once and left the allocator holding gigabytes (issue 19, item 1).
//!
//! Workers take the next computation from one queue, in arrival order, the moment they finish one: a
//! worker never waits for an async task to be woken to hand it work, which left the cores idle 7 % of the
//! time under 200 concurrent logons when each computation was handed to `spawn_blocking` after a semaphore's
//! permit woke its task (issue 27, Load).
//!
//! A caller waits for its computation to start at most [`PoolLimits::max_wait`], then gets
//! [`AppError::Busy`] (HTTP 503 with `Retry-After`), not a refusal: a person typing the right password
//! during a flood must not be told that it is wrong. A caller who arrives behind a queue that can't be
//! served within that wait (by the recent time of a computation) hears it at once instead of after the
//! wait, so a flood is answered fast and the queue stays short. Every logon takes exactly one place in the
//! queue whatever the name, so the busy answer tells nothing about which names exist.

use crate::error::{AppError, Result};
use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The longest password Roster checks or sets, in bytes (UTF-8). Longer ones are refused at logon with the
/// wrong-password answer, before any Argon2 computation or directory bind (slapd drops a bind of 1 MB
/// unanswered: issue 19, item 8). 1024 bytes holds 256 characters of up to four bytes each, Active
/// Directory's own limit of 256 characters, and far more than any passphrase or password manager uses.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// The dummy verification's salt: it only has to cost what a real verification costs.
const DUMMY_SALT: &[u8; 16] = b"roster-dummy-slt";

/// How many Argon2id computations may run at once, and how long a caller waits for one to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLimits {
    /// Computations at once (worker threads); each keeps a buffer of its parameters' memory (19 MiB by
    /// default).
    pub concurrent: usize,
    /// The longest a caller waits for its computation to start before [`AppError::Busy`].
    pub max_wait: Duration,
}

impl Default for PoolLimits {
    /// One computation per core, and callers wait at most 5 seconds. A longer queue than that is a flood,
    /// not people logging on: its callers are told to come back (`Retry-After`) instead of waiting longer
    /// than an HTTP client or a person would.
    fn default() -> Self {
        PoolLimits {
            concurrent: std::thread::available_parallelism().map_or(2, usize::from),
            max_wait: Duration::from_secs(5),
        }
    }
}

/// What the pool has done so far; for tests and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    /// Computations running now.
    pub in_flight: usize,
    /// The most computations that ever ran at once.
    pub peak_in_flight: usize,
    /// Computations run.
    pub computed: u64,
    /// Callers refused with [`AppError::Busy`]: at once (the queue ahead was too long) or after waiting
    /// [`PoolLimits::max_wait`].
    pub refused_busy: u64,
    /// Callers holding a place in the queue whose computation hasn't started.
    pub waiting: usize,
    /// Memory buffers allocated (at most `concurrent`, unless a computation panicked and lost its own).
    pub buffers_allocated: u64,
}

/// The bounded pool of Argon2id computations; see the module documentation.
pub struct PasswordPool {
    limits: PoolLimits,
    shared: Arc<Shared>,
}

/// What the pool's handle and its worker threads share.
struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when a computation is queued or the pool closes.
    ready: Condvar,
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
    waiting: AtomicUsize,
    /// A moving average of a computation's wall time, in nanoseconds; 0 until the first one.
    recent_nanos: AtomicU64,
    computed: AtomicU64,
    refused_busy: AtomicU64,
    buffers_allocated: AtomicU64,
}

struct Queue {
    jobs: VecDeque<Job>,
    /// Worker threads started (they start with the first computation, so that a pool that never computes,
    /// as in most CLI commands, costs no threads).
    started: bool,
    /// The pool's handle is gone: the workers end when the queue is empty.
    closed: bool,
}

/// What a computation answers: the work closures are type-erased to go through one queue.
enum Answer {
    Verified(bool),
    Hashed(String),
    /// Only the tests' [`PasswordPool::occupy_worker`] answers this.
    Held,
}

type Work = Box<dyn FnOnce(&mut Vec<Block>) -> Result<Answer> + Send>;

/// A queued computation.
struct Job {
    place: Arc<Place>,
    work: Work,
    reply: oneshot::Sender<Result<Answer>>,
}

/// A caller's place in the queue. It leaves the queue exactly once: when a worker starts its computation,
/// or when the caller gives up (waited too long, or stopped waiting: a client that hung up), whichever
/// comes first; `waiting` counts the places that haven't left.
struct Place {
    state: AtomicU8,
}

const QUEUED: u8 = 0;
const STARTED: u8 = 1;
const ABANDONED: u8 = 2;

impl Place {
    /// Moves the place out of the queue to `to`; false if it had already left.
    fn leave(&self, to: u8, shared: &Shared) -> bool {
        let left = self
            .state
            .compare_exchange(QUEUED, to, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        if left {
            shared.waiting.fetch_sub(1, Ordering::SeqCst);
        }
        left
    }
}

impl std::fmt::Debug for PasswordPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordPool")
            .field("limits", &self.limits)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Drop for PasswordPool {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_all();
    }
}

impl PasswordPool {
    /// A pool with these limits (at least one worker). Workers and their buffers start when first needed.
    pub fn new(limits: PoolLimits) -> PasswordPool {
        let limits = PoolLimits {
            concurrent: limits.concurrent.max(1),
            ..limits
        };
        PasswordPool {
            limits,
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue {
                    jobs: VecDeque::new(),
                    started: false,
                    closed: false,
                }),
                ready: Condvar::new(),
                in_flight: AtomicUsize::new(0),
                peak_in_flight: AtomicUsize::new(0),
                waiting: AtomicUsize::new(0),
                recent_nanos: AtomicU64::new(0),
                computed: AtomicU64::new(0),
                refused_busy: AtomicU64::new(0),
                buffers_allocated: AtomicU64::new(0),
            }),
        }
    }

    pub fn limits(&self) -> PoolLimits {
        self.limits
    }

    pub fn stats(&self) -> PoolStats {
        let s = &self.shared;
        PoolStats {
            in_flight: s.in_flight.load(Ordering::SeqCst),
            peak_in_flight: s.peak_in_flight.load(Ordering::SeqCst),
            computed: s.computed.load(Ordering::SeqCst),
            refused_busy: s.refused_busy.load(Ordering::SeqCst),
            waiting: s.waiting.load(Ordering::SeqCst),
            buffers_allocated: s.buffers_allocated.load(Ordering::SeqCst),
        }
    }

    /// A place in the queue for one computation, or [`AppError::Busy`] at once when the computations
    /// already waiting would take longer than [`PoolLimits::max_wait`] to start. The wait itself happens
    /// in [`Slot::verify`] or [`Slot::hash`], so that a caller can do other work (a directory bind) while
    /// its computation waits for a worker.
    pub async fn acquire(self: &Arc<Self>) -> Result<Slot> {
        let s = &self.shared;
        let recent = s.recent_nanos.load(Ordering::SeqCst);
        let waiting = s.waiting.load(Ordering::SeqCst);
        let busy_workers = s.in_flight.load(Ordering::SeqCst);
        if recent > 0 && waiting + busy_workers >= self.limits.concurrent {
            // Served in turns of `concurrent` computations: this caller's turn comes after the waiting
            // ones' and one more for those running now.
            let turns = waiting / self.limits.concurrent + 1;
            let expected = Duration::from_nanos(recent.saturating_mul(turns as u64));
            if expected > self.limits.max_wait {
                return Err(self.busy("at once"));
            }
        }
        s.waiting.fetch_add(1, Ordering::SeqCst);
        Ok(Slot {
            pool: self.clone(),
            place: Arc::new(Place {
                state: AtomicU8::new(QUEUED),
            }),
        })
    }

    fn busy(&self, when: &'static str) -> AppError {
        self.shared.refused_busy.fetch_add(1, Ordering::SeqCst);
        tracing::info!(
            concurrent = self.limits.concurrent,
            waiting = self.shared.waiting.load(Ordering::SeqCst),
            when,
            "too many password checks waiting; answered busy"
        );
        AppError::Busy {
            retry_after_seconds: self.retry_after_seconds(),
        }
    }

    /// The queue that refused a caller is served within `max_wait`: retry after that (at least 1 s).
    fn retry_after_seconds(&self) -> u64 {
        let wait = self.limits.max_wait;
        (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
    }

    /// Hashes a new password (Argon2id, default parameters, random salt) into a PHC string.
    pub async fn hash(self: &Arc<Self>, password: String) -> Result<String> {
        check_length(&password)?;
        self.acquire().await?.hash(password).await
    }

    /// Verifies a password against a stored hash, or, with none, against a dummy so that the answer takes
    /// as long as a real check.
    pub async fn verify(
        self: &Arc<Self>,
        password: String,
        stored: Option<String>,
    ) -> Result<bool> {
        self.acquire().await?.verify(password, stored).await
    }

    /// For tests of what callers hear when the workers are busy: takes one worker until the returned guard
    /// is dropped (waiting like any computation for it to be free). Not for use in the product.
    #[doc(hidden)]
    pub async fn occupy_worker(self: &Arc<Self>) -> Result<WorkerHeld> {
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (running_tx, running) = oneshot::channel::<()>();
        let slot = self.acquire().await?;
        let pool = self.clone();
        let done = tokio::spawn(async move {
            slot.run(move |_memory| {
                let _ = running_tx.send(());
                // Held until the guard's sender is dropped.
                let _ = released.recv();
                Ok(Answer::Held)
            })
            .await
            .map(|_| ())
        });
        running
            .await
            .map_err(|_| AppError::Internal("the held worker didn't start".into()))?;
        Ok(WorkerHeld {
            _release: release,
            _done: done,
            _pool: pool,
        })
    }

    /// Queues a computation, starting the workers the first time.
    fn submit(&self, job: Job) -> Result<()> {
        let mut queue = self.shared.lock();
        if !queue.started {
            for i in 0..self.limits.concurrent {
                let shared = self.shared.clone();
                std::thread::Builder::new()
                    .name(format!("roster-password-{i}"))
                    .spawn(move || shared.work())
                    .map_err(|e| {
                        AppError::Internal(format!("can't start a password worker thread: {e}"))
                    })?;
            }
            queue.started = true;
        }
        queue.jobs.push_back(job);
        drop(queue);
        self.shared.ready.notify_one();
        Ok(())
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A worker thread: takes the computations in arrival order until the pool closes, in its own buffer.
    fn work(&self) {
        let mut memory: Vec<Block> = Vec::new();
        loop {
            let job = {
                let mut queue = self.lock();
                loop {
                    if let Some(job) = queue.jobs.pop_front() {
                        break job;
                    }
                    if queue.closed {
                        return;
                    }
                    queue = self
                        .ready
                        .wait(queue)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            };
            // A caller who stopped waiting (hung up, or gave up after max_wait) costs no computation.
            if job.reply.is_closed() {
                job.place.leave(ABANDONED, self);
                continue;
            }
            if !job.place.leave(STARTED, self) {
                continue;
            }
            let fresh = memory.is_empty();
            let started = Instant::now();
            let answer = {
                let _counted = self.enter();
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (job.work)(&mut memory)))
                    .unwrap_or_else(|_| {
                        Err(AppError::Internal("a password computation panicked".into()))
                    })
            };
            self.took(started.elapsed());
            if fresh && !memory.is_empty() {
                self.buffers_allocated.fetch_add(1, Ordering::SeqCst);
            }
            keep_default_size(&mut memory);
            // The caller may have gone meanwhile; nobody to tell then.
            let _ = job.reply.send(answer);
        }
    }

    /// Counts a computation in and out (also when it panics).
    fn enter(&self) -> Counted<'_> {
        let counted = Counted::new(&self.in_flight);
        self.peak_in_flight.fetch_max(counted.now, Ordering::SeqCst);
        self.computed.fetch_add(1, Ordering::SeqCst);
        counted
    }

    /// Folds a computation's wall time into the moving average (an eighth of the new one).
    fn took(&self, elapsed: Duration) {
        let sample = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX).max(1);
        let old = self.recent_nanos.load(Ordering::SeqCst);
        let new = if old == 0 {
            sample
        } else {
            old - old / 8 + sample / 8
        };
        // A lost update between two computations ending at once only drops one sample.
        self.recent_nanos.store(new, Ordering::SeqCst);
    }
}

/// One more in a counter for as long as it lives (a panic included).
struct Counted<'a> {
    counter: &'a AtomicUsize,
    now: usize,
}

impl<'a> Counted<'a> {
    fn new(counter: &'a AtomicUsize) -> Counted<'a> {
        let now = counter.fetch_add(1, Ordering::SeqCst) + 1;
        Counted { counter, now }
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A worker taken by [`PasswordPool::occupy_worker`] until this is dropped.
#[doc(hidden)]
pub struct WorkerHeld {
    _release: std::sync::mpsc::Sender<()>,
    _done: tokio::task::JoinHandle<Result<()>>,
    _pool: Arc<PasswordPool>,
}

/// A place in the pool's queue for one Argon2id computation, taken with [`PasswordPool::acquire`]. Once
/// its computation has started, it runs to its end even if the caller stops waiting (a client that hangs
/// up doesn't free a worker early); before that, a caller that stops waiting leaves the queue.
pub struct Slot {
    pool: Arc<PasswordPool>,
    place: Arc<Place>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").finish_non_exhaustive()
    }
}

impl Drop for Slot {
    /// A place never used, or given up while queued, leaves the queue (a no-op once it started).
    fn drop(&mut self) {
        self.place.leave(ABANDONED, &self.pool.shared);
    }
}

impl Slot {
    /// See [`PasswordPool::verify`].
    pub async fn verify(self, password: String, stored: Option<String>) -> Result<bool> {
        let answer = self
            .run(move |memory| match &stored {
                Some(stored) => {
                    verify_in(memory, password.as_bytes(), stored).map(Answer::Verified)
                }
                None => dummy_in(memory, password.as_bytes()).map(|()| Answer::Verified(false)),
            })
            .await?;
        match answer {
            Answer::Verified(ok) => Ok(ok),
            Answer::Hashed(_) | Answer::Held => Err(AppError::Internal(
                "a password check answered something else".into(),
            )),
        }
    }

    /// See [`PasswordPool::hash`].
    pub async fn hash(self, password: String) -> Result<String> {
        check_length(&password)?;
        let salt = crate::secrets::random_bytes::<16>()?;
        let answer = self
            .run(move |memory| hash_in(memory, password.as_bytes(), &salt).map(Answer::Hashed))
            .await?;
        match answer {
            Answer::Hashed(phc) => Ok(phc),
            Answer::Verified(_) | Answer::Held => Err(AppError::Internal(
                "hashing a password answered something else".into(),
            )),
        }
    }

    /// Queues `work` and waits for its answer; [`AppError::Busy`] if it hasn't started within
    /// [`PoolLimits::max_wait`].
    async fn run(
        self,
        work: impl FnOnce(&mut Vec<Block>) -> Result<Answer> + Send + 'static,
    ) -> Result<Answer> {
        let deadline = tokio::time::Instant::now() + self.pool.limits.max_wait;
        let (reply, mut answer) = oneshot::channel();
        self.pool.submit(Job {
            place: self.place.clone(),
            work: Box::new(work),
            reply,
        })?;
        let gone = || AppError::Internal("a password worker stopped".into());
        match tokio::time::timeout_at(deadline, &mut answer).await {
            Ok(answered) => answered.map_err(|_| gone())?,
            Err(_elapsed) => {
                if self.place.leave(ABANDONED, &self.pool.shared) {
                    return Err(self.pool.busy("after waiting"));
                }
                // Started just now: its answer comes within a computation's time.
                answer.await.map_err(|_| gone())?
            }
        }
    }
}

/// A stored hash with more memory than the default grew this buffer: keep only the default size, so that
/// what the pool holds stays `concurrent` × 19 MiB.
fn keep_default_size(memory: &mut Vec<Block>) {
    let default_blocks = Params::DEFAULT.block_count();
    if memory.len() > default_blocks {
        memory.truncate(default_blocks);
        memory.shrink_to_fit();
    }
}

fn check_length(password: &str) -> Result<()> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(AppError::Invalid(format!(
            "a password can be at most {MAX_PASSWORD_BYTES} bytes long (UTF-8)"
        )));
    }
    Ok(())
}

/// `memory`, grown to `blocks` if it is shorter (the first use of a slot, or a stored hash with more memory
/// than the default). Argon2's first pass overwrites every block, so a reused buffer needs no clearing.
fn sized(memory: &mut Vec<Block>, blocks: usize) -> &mut [Block] {
    if memory.len() < blocks {
        memory.resize(blocks, Block::new());
    }
    memory.as_mut_slice()
}

fn internal(what: &str) -> impl Fn(argon2::password_hash::Error) -> AppError + '_ {
    move |e| AppError::Internal(format!("{what}: {e}"))
}

fn verify_in(memory: &mut Vec<Block>, password: &[u8], stored: &str) -> Result<bool> {
    let unusable = "a stored password hash is unusable";
    let parsed = PasswordHash::new(stored).map_err(internal(unusable))?;
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(internal(unusable))?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(|e| AppError::Internal(format!("{unusable}: {e}")))?
        .unwrap_or_default();
    // The parameters are the hash's own (memory, passes, lanes, output length), as argon2's verifier does.
    let params = Params::try_from(&parsed).map_err(internal(unusable))?;
    let expected = parsed
        .hash
        .ok_or_else(|| AppError::Internal(format!("{unusable}: it has no hash")))?;
    let salt = parsed
        .salt
        .ok_or_else(|| AppError::Internal(format!("{unusable}: it has no salt")))?;
    let mut salt_buf = [0u8; Salt::MAX_LENGTH];
    let salt = salt.decode_b64(&mut salt_buf).map_err(internal(unusable))?;
    let blocks = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    let memory = sized(memory, blocks);
    let computed = Output::init_with(expected.len(), |out| {
        argon2
            .hash_password_into_with_memory(password, salt, out, &mut *memory)
            .map_err(Into::into)
    })
    .map_err(internal(unusable))?;
    // `Output`'s equality is constant-time.
    Ok(computed == expected)
}

/// Costs what verifying against a default-parameter hash costs, and answers nothing.
fn dummy_in(memory: &mut Vec<Block>, password: &[u8]) -> Result<()> {
    let params = Params::DEFAULT;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let memory = sized(memory, params.block_count());
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into_with_memory(password, DUMMY_SALT, &mut out, memory)
        .map_err(|e| AppError::Internal(format!("the dummy password check failed: {e}")))
}

fn hash_in(memory: &mut Vec<Block>, password: &[u8], salt: &[u8; 16]) -> Result<String> {
    let failed = |e: &dyn std::fmt::Display| AppError::Internal(format!("hashing failed: {e}"));
    let params = Params::DEFAULT;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let memory = sized(memory, params.block_count());
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password, salt, &mut out, memory)
        .map_err(|e| failed(&e))?;
    let salt = SaltString::encode_b64(salt).map_err(|e| failed(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| failed(&e))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| failed(&e))?),
    };
    Ok(phc.to_string())
}

/// A new random password for the built-in administrator: 20 characters without look-alikes.
pub fn generate() -> Result<String> {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let bytes = crate::secrets::random_bytes::<20>()?;
    Ok(bytes
        .iter()
        .filter_map(|b| ALPHABET.get(usize::from(*b) % ALPHABET.len()))
        .map(|&c| char::from(c))
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    fn pool(concurrent: usize) -> Arc<PasswordPool> {
        Arc::new(PasswordPool::new(PoolLimits {
            concurrent,
            max_wait: Duration::from_secs(60),
        }))
    }

    #[tokio::test]
    async fn hashes_verify_both_ways_with_the_argon2_crate() {
        let pool = pool(1);
        // A hash stored by earlier versions (argon2's own hasher) verifies through the pool...
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let old = Argon2::default()
            .hash_password(b"s3cret", &salt)
            .unwrap()
            .to_string();
        assert!(
            pool.verify("s3cret".into(), Some(old.clone()))
                .await
                .unwrap()
        );
        assert!(!pool.verify("s3cret!".into(), Some(old)).await.unwrap());
        // ... and the pool's hashes are ordinary PHC strings that argon2 verifies.
        let new = pool.hash("pässwörd".into()).await.unwrap();
        assert!(new.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{new}");
        let parsed = PasswordHash::new(&new).unwrap();
        Argon2::default()
            .verify_password("pässwörd".as_bytes(), &parsed)
            .unwrap();
        assert!(
            pool.verify("pässwörd".into(), Some(new.clone()))
                .await
                .unwrap()
        );
        assert!(!pool.verify("passwörd".into(), Some(new)).await.unwrap());
        // The dummy never accepts.
        assert!(!pool.verify("anything".into(), None).await.unwrap());
        // One slot: one buffer, reused for all six computations.
        let stats = pool.stats();
        assert_eq!(stats.computed, 6);
        assert_eq!(stats.peak_in_flight, 1);
    }

    #[tokio::test]
    async fn hashes_with_other_parameters_verify_and_the_buffer_shrinks_back() {
        let pool = pool(1);
        let params = Params::new(2 * Params::DEFAULT_M_COST, 1, 1, None).unwrap();
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let bigger = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"pw", &salt)
            .unwrap()
            .to_string();
        assert!(pool.verify("pw".into(), Some(bigger)).await.unwrap());
        // The worker's buffer grew to the bigger hash's memory for it, and went back to the default size.
        let mut memory = vec![Block::new(); 2 * Params::DEFAULT.block_count()];
        keep_default_size(&mut memory);
        assert_eq!(memory.len(), Params::DEFAULT.block_count());
        assert_eq!(pool.stats().buffers_allocated, 1);
        assert!(!pool.verify("pw".into(), None).await.unwrap());
        assert_eq!(pool.stats().buffers_allocated, 1);
    }

    #[tokio::test]
    async fn an_unusable_stored_hash_is_an_internal_error_without_the_password() {
        let e = pool(1)
            .verify("the-password".into(), Some("$argon2id$nonsense".into()))
            .await
            .unwrap_err();
        assert!(matches!(e, AppError::Internal(_)), "{e:?}");
        assert!(!e.to_string().contains("the-password"), "{e}");
    }

    #[tokio::test]
    async fn callers_wait_at_most_max_wait_then_hear_busy() {
        let pool = Arc::new(PasswordPool::new(PoolLimits {
            concurrent: 1,
            max_wait: Duration::from_millis(20),
        }));
        let held = pool.occupy_worker().await.unwrap();
        let e = pool.verify("pw".into(), None).await.unwrap_err();
        assert!(
            matches!(
                e,
                AppError::Busy {
                    retry_after_seconds: 1
                }
            ),
            "{e:?}"
        );
        assert_eq!(pool.stats().refused_busy, 1);
        // The caller that gave up left the queue and costs no computation.
        assert_eq!(pool.stats().waiting, 0);
        drop(held);
        assert!(!pool.verify("pw".into(), None).await.unwrap());
    }

    #[tokio::test]
    async fn a_caller_behind_a_queue_too_long_to_serve_in_time_hears_busy_at_once() {
        let pool = Arc::new(PasswordPool::new(PoolLimits {
            concurrent: 1,
            max_wait: Duration::from_secs(600),
        }));
        // No computation yet: nothing to estimate from, so callers wait.
        let held = pool.occupy_worker().await.unwrap();
        let waiter = tokio::spawn({
            let pool = pool.clone();
            async move { pool.verify("pw".into(), None).await }
        });
        while pool.stats().waiting == 0 {
            tokio::task::yield_now().await;
        }
        // With computations known to take 400 s, the next caller's turn (two ahead) is 800 s away.
        pool.shared
            .recent_nanos
            .store(400_000_000_000, Ordering::SeqCst);
        let started = Instant::now();
        let e = pool.verify("pw".into(), None).await.unwrap_err();
        assert!(matches!(e, AppError::Busy { .. }), "{e:?}");
        assert!(started.elapsed() < Duration::from_secs(60));
        pool.shared.recent_nanos.store(1, Ordering::SeqCst);
        drop(held);
        assert!(!waiter.await.unwrap().unwrap());
        assert_eq!(pool.stats().waiting, 0);
    }

    #[tokio::test]
    async fn passwords_longer_than_the_limit_are_not_hashed() {
        let e = pool(1)
            .hash("x".repeat(MAX_PASSWORD_BYTES + 1))
            .await
            .unwrap_err();
        assert!(matches!(e, AppError::Invalid(_)), "{e:?}");
        pool(1).hash("x".repeat(MAX_PASSWORD_BYTES)).await.unwrap();
    }
}
