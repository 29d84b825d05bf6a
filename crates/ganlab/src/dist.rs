//! Data-parallel training over processes on libtorch's c10d (docs/DISTRIBUTED.md).
//!
//! One process per rank, started by `ganlab train --nproc N` (or `--nnodes`, or any launcher
//! that sets torchrun's variables RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, LOCAL_RANK).
//! Ranks meet at a TCPStore that rank 0 serves and form libtorch's own ProcessGroupGloo
//! (crates/ganlab/cpp/dist.cpp); nothing here moves bytes itself.
//!
//! What the rest of the crate does with it, task-independently:
//! - [`crate::train::FlatOptimizer::step`] averages its flat gradient buffer over the ranks
//!   (one all-reduce per optimizer group per step) before the update;
//! - the loop broadcasts rank 0's weights at the start and lets rank 0 alone write;
//! - batch-dimension draws of a training step (data indices, noise, dropout masks) go
//!   through [`randn`], [`rand`], [`randint`], [`dropout`] and [`shard`]: inside
//!   [`sharded`] (the loop wraps each task step in it) every rank draws the *global* batch
//!   from the step's seed, the same on all ranks, and keeps its own rows. Outside it
//!   (evaluations, grids, inference) they draw as plain libtorch does, so rank 0's
//!   evaluations equal a single process's. So N ranks of batch b
//!   compute exactly what one process of batch N·b computes (to float summation order),
//!   and `run.batch_size` is per rank, as in torch's DistributedDataParallel.
//!
//! Per rank, not synchronised: BatchNorm's batch statistics and running averages (as DDP
//! without SyncBatchNorm; rank 0's are checkpointed), and task state kept from the rank's
//! own batches (image pools, Diffusion-GAN's r_d estimate).

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tch::{Kind, Tensor};

use crate::error::{GanError, Result};

/// Where this process sits and how it finds the others (torchrun's variables).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// This process's rank, 0 ≤ rank < world.
    pub rank: usize,
    /// Number of processes.
    pub world: usize,
    /// Rank within this machine (picks the CUDA device for `cuda`).
    pub local_rank: usize,
    /// Address of rank 0's store.
    pub master_addr: String,
    /// Port of rank 0's store.
    pub master_port: u16,
    /// How long a collective or the rendezvous may wait for a peer.
    pub timeout: Duration,
}

/// The default time a collective waits for a peer before failing (GANLAB_DIST_TIMEOUT_S
/// overrides it). The other ranks wait in their next collective while rank 0 evaluates, and
/// an FID of 5,000 samples takes ~8 minutes on 2 CPU cores, so 30 minutes; a peer that dies
/// ends the others at once (its connections close), only a hung one waits this long.
pub const DEFAULT_TIMEOUT_S: u64 = 1800;

impl Spec {
    /// Reads RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, LOCAL_RANK (and
    /// GANLAB_DIST_TIMEOUT_S); None when WORLD_SIZE is unset. Each must parse and be in range.
    pub fn from_env() -> Result<Option<Spec>> {
        let get = |k: &str| std::env::var(k).ok();
        let Some(world) = get("WORLD_SIZE") else {
            return Ok(None);
        };
        let num = |k: &str, v: &str| {
            v.parse::<u64>()
                .map_err(|_| GanError::Input(format!("{k}={v}: not a non-negative integer")))
        };
        let world = num("WORLD_SIZE", &world)? as usize;
        let rank = num(
            "RANK",
            &get("RANK")
                .ok_or_else(|| GanError::Input("WORLD_SIZE is set but RANK is not".into()))?,
        )? as usize;
        let local_rank = match get("LOCAL_RANK") {
            Some(v) => num("LOCAL_RANK", &v)? as usize,
            None => rank,
        };
        let master_addr = get("MASTER_ADDR").unwrap_or_else(|| "127.0.0.1".into());
        let port = num(
            "MASTER_PORT",
            &get("MASTER_PORT").unwrap_or_else(|| "29500".into()),
        )?;
        let timeout = match get("GANLAB_DIST_TIMEOUT_S") {
            Some(v) => num("GANLAB_DIST_TIMEOUT_S", &v)?,
            None => DEFAULT_TIMEOUT_S,
        };
        let spec = Spec {
            rank,
            world,
            local_rank,
            master_addr,
            master_port: u16::try_from(port).map_err(|_| {
                GanError::Input(format!("MASTER_PORT={port}: must be in [1, 65535]"))
            })?,
            timeout: Duration::from_secs(timeout),
        };
        spec.validate()?;
        Ok(Some(spec))
    }

    /// Checks ranges.
    pub fn validate(&self) -> Result<()> {
        if self.world == 0 {
            return Err(GanError::Input("WORLD_SIZE must be at least 1".into()));
        }
        if self.rank >= self.world {
            return Err(GanError::Input(format!(
                "RANK={} must be below WORLD_SIZE={}",
                self.rank, self.world
            )));
        }
        if self.master_port == 0 {
            return Err(GanError::Input("MASTER_PORT must be in [1, 65535]".into()));
        }
        if self.timeout.is_zero() {
            return Err(GanError::Input(
                "GANLAB_DIST_TIMEOUT_S must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

struct World {
    rank: usize,
    size: usize,
    local_rank: usize,
    group: Mutex<ffi::Group>,
}

static WORLD: OnceLock<World> = OnceLock::new();

/// Joins the process group `spec` describes (once per process; a world of 1 needs no peers
/// and creates none). Blocks until every rank has joined or the timeout passes.
pub fn init(spec: &Spec) -> Result<()> {
    spec.validate()?;
    if WORLD.get().is_some() {
        return Err(GanError::Input(
            "this process already joined a process group".into(),
        ));
    }
    let group = ffi::Group::new(spec)?;
    WORLD
        .set(World {
            rank: spec.rank,
            size: spec.world,
            local_rank: spec.local_rank,
            group: Mutex::new(group),
        })
        .map_err(|_| GanError::Input("this process already joined a process group".into()))
}

/// This process's rank (0 without a group).
pub fn rank() -> usize {
    WORLD.get().map_or(0, |w| w.rank)
}

/// This process's rank on its machine (0 without a group).
pub fn local_rank() -> usize {
    WORLD.get().map_or(0, |w| w.local_rank)
}

/// Number of ranks (1 without a group).
pub fn world_size() -> usize {
    WORLD.get().map_or(1, |w| w.size)
}

/// Whether this process writes (rank 0, or no group).
pub fn is_main() -> bool {
    rank() == 0
}

fn with_group<R>(f: impl FnOnce(&mut ffi::Group) -> Result<R>) -> Option<Result<R>> {
    let w = WORLD.get().filter(|w| w.size > 1)?;
    let mut g = w.group.lock().unwrap_or_else(|e| e.into_inner());
    Some(f(&mut g))
}

/// Sums `t` over the ranks in place (no-op without peers). `t` must be contiguous.
pub fn all_reduce_sum(t: &Tensor) -> Result<()> {
    with_group(|g| g.all_reduce_sum(t)).unwrap_or(Ok(()))
}

/// Averages `t` over the ranks in place (no-op without peers). `t` must be contiguous.
pub fn all_reduce_mean(t: &Tensor) -> Result<()> {
    let n = world_size();
    if n > 1 {
        all_reduce_sum(t)?;
        let _guard = tch::no_grad_guard();
        let _ = t.shallow_clone().g_div_scalar_(n as f64);
    }
    Ok(())
}

/// Copies rank 0's `t` into every rank's `t` in place (no-op without peers).
pub fn broadcast(t: &Tensor) -> Result<()> {
    with_group(|g| g.broadcast(t, 0)).unwrap_or(Ok(()))
}

/// Waits until every rank gets here (no-op without peers).
pub fn barrier() -> Result<()> {
    with_group(|g| g.barrier()).unwrap_or(Ok(()))
}

thread_local! {
    static SHARDING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` (a training step) with batch draws sharded over the ranks (module docs).
pub fn sharded<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            SHARDING.with(|s| s.set(self.0));
        }
    }
    let _reset = Reset(SHARDING.with(|s| s.replace(true)));
    f()
}

/// How many ranks the current draws are split over: the world inside [`sharded`], else 1.
pub fn shards() -> i64 {
    if SHARDING.with(|s| s.get()) {
        world_size() as i64
    } else {
        1
    }
}

/// This rank's rows of a tensor whose first dimension holds the global batch (all ranks'
/// rows, rank 0's first), inside [`sharded`]; the tensor itself otherwise.
pub fn shard(global: &Tensor) -> Tensor {
    let n = shards();
    if n == 1 {
        return global.shallow_clone();
    }
    let rows = global.size()[0] / n;
    global.narrow(0, rank() as i64 * rows, rows)
}

fn global_shape(shape: &[i64]) -> Vec<i64> {
    let mut g = shape.to_vec();
    if let Some(b) = g.first_mut() {
        *b *= shards();
    }
    g
}

/// N(0, 1) noise of `shape` whose first dimension is this rank's batch: the rank's rows of
/// the global batch's draw (module docs).
pub fn randn(shape: &[i64], opts: (Kind, tch::Device)) -> Tensor {
    shard(&Tensor::randn(global_shape(shape), opts))
}

/// N(0, 1) noise for `parts` batches stacked along the first dimension (`shape[0]` =
/// parts × this rank's batch, e.g. real and fake images concatenated): one draw of the
/// global stack, each part's global rows in turn, of which this rank keeps its rows of each
/// part. Without sharding: `Tensor::randn(shape)`.
pub fn randn_parts(parts: i64, shape: &[i64], opts: (Kind, tch::Device)) -> Tensor {
    let w = shards();
    if w == 1 {
        return Tensor::randn(shape, opts);
    }
    let n = shape[0] / parts;
    let global = Tensor::randn(global_shape(shape), opts);
    let r = rank() as i64;
    Tensor::cat(
        &(0..parts)
            .map(|p| global.narrow(0, p * w * n + r * n, n))
            .collect::<Vec<_>>(),
        0,
    )
}

/// `m` distinct indices of [0, `len`) (int64, CPU), distinct over the whole global batch:
/// one permutation drawn for the global batch, this rank's rows of it (as [`shard`]). The
/// global batch must fit in `len` (an error naming `run.batch_size` otherwise).
pub fn distinct(len: i64, m: i64, what: &str) -> Result<Tensor> {
    let global = m * shards();
    if global > len {
        return Err(GanError::config(
            "run.batch_size",
            format!("× the number of ranks is {global}, more than the {len} {what}"),
        ));
    }
    let all = Tensor::randperm(len, (Kind::Int64, tch::Device::Cpu));
    Ok(shard(&all.narrow(0, 0, global)))
}

/// This rank's part of a list drawn for the global batch (as [`shard`]).
pub fn shard_slice<T: Clone>(global: &[T]) -> Vec<T> {
    let w = shards() as usize;
    let n = global.len() / w;
    global[rank() * n..(rank() + 1) * n].to_vec()
}

/// Sums `values` over the ranks inside [`sharded`] (one collective); as given otherwise.
pub fn sum_over_ranks(values: &[f64]) -> Result<Vec<f64>> {
    if shards() == 1 {
        return Ok(values.to_vec());
    }
    let t = Tensor::from_slice(values);
    all_reduce_sum(&t)?;
    Ok(Vec::<f64>::try_from(&t)?)
}

/// U[0, 1) noise of `shape` (first dimension: this rank's batch), as [`randn`].
pub fn rand(shape: &[i64], opts: (Kind, tch::Device)) -> Tensor {
    shard(&Tensor::rand(global_shape(shape), opts))
}

/// Integers in [low, high) of `shape` (first dimension: this rank's batch), as [`randn`].
pub fn randint(low: i64, high: i64, shape: &[i64], opts: (Kind, tch::Device)) -> Tensor {
    shard(&Tensor::randint_low(low, high, global_shape(shape), opts))
}

/// Dropout with keep-probability 1 − p whose mask is this rank's rows of the global batch's
/// mask (as [`randn`]); identity when `train` is false. Scales kept values by 1/(1 − p), as
/// `torch.nn.functional.dropout`.
pub fn dropout(x: &Tensor, p: f64, train: bool) -> Tensor {
    if !train || p == 0.0 {
        return x.shallow_clone();
    }
    if shards() == 1 {
        return x.dropout(p, train);
    }
    let keep = rand(&x.size(), (x.kind(), x.device()))
        .ge(p)
        .to_kind(x.kind());
    x * keep / (1.0 - p)
}

/// The c10d process group of cpp/dist.cpp.
#[allow(unsafe_code)]
mod ffi {
    use std::ffi::{c_char, c_int, c_long, c_void, CStr, CString};

    use tch::Tensor;

    use super::Spec;
    use crate::error::{GanError, Result};

    #[cfg(ganlab_c10d)]
    mod sys {
        use std::ffi::{c_char, c_int, c_long, c_void};
        use torch_sys::C_tensor;
        extern "C" {
            pub fn ganlab_dist_new(
                addr: *const c_char,
                port: c_int,
                rank: c_int,
                world: c_int,
                iface: *const c_char,
                timeout_ms: c_long,
                error: *mut *mut c_char,
            ) -> *mut c_void;
            pub fn ganlab_dist_free(group: *mut c_void);
            pub fn ganlab_dist_all_reduce_sum(
                group: *mut c_void,
                t: *mut C_tensor,
                error: *mut *mut c_char,
            ) -> c_int;
            pub fn ganlab_dist_broadcast(
                group: *mut c_void,
                t: *mut C_tensor,
                root: c_int,
                error: *mut *mut c_char,
            ) -> c_int;
            pub fn ganlab_dist_barrier(group: *mut c_void, error: *mut *mut c_char) -> c_int;
        }
    }

    /// Without gloo's headers no group can be joined: the one entry point fails (a null
    /// message reads as [`NO_C10D`]) and the collectives are never reached.
    #[cfg(not(ganlab_c10d))]
    #[allow(clippy::missing_safety_doc)]
    mod sys {
        use std::ffi::{c_char, c_int, c_long, c_void};
        use torch_sys::C_tensor;
        pub unsafe fn ganlab_dist_new(
            _: *const c_char,
            _: c_int,
            _: c_int,
            _: c_int,
            _: *const c_char,
            _: c_long,
            _: *mut *mut c_char,
        ) -> *mut c_void {
            std::ptr::null_mut()
        }
        pub unsafe fn ganlab_dist_free(_: *mut c_void) {}
        pub unsafe fn ganlab_dist_all_reduce_sum(
            _: *mut c_void,
            _: *mut C_tensor,
            _: *mut *mut c_char,
        ) -> c_int {
            -1
        }
        pub unsafe fn ganlab_dist_broadcast(
            _: *mut c_void,
            _: *mut C_tensor,
            _: c_int,
            _: *mut *mut c_char,
        ) -> c_int {
            -1
        }
        pub unsafe fn ganlab_dist_barrier(_: *mut c_void, _: *mut *mut c_char) -> c_int {
            -1
        }
    }

    extern "C" {
        fn free(p: *mut c_void);
    }

    const NO_C10D: &str = "this ganlab was built without c10d (gloo's headers were not found): \
        run scripts/setup-libtorch, which unpacks Debian's libgloo-dev, then rebuild";

    /// Takes the shim's malloc'ed message (null: built without c10d).
    unsafe fn message(error: *mut c_char) -> String {
        if error.is_null() {
            return NO_C10D.into();
        }
        let m = CStr::from_ptr(error).to_string_lossy().into_owned();
        free(error.cast());
        // c10d appends the C++ stack ("Exception raised from ... frame #0 ..."): not for users.
        match m.find("\nException raised from") {
            Some(i) => m[..i].to_string(),
            None => m,
        }
    }

    /// What Gloo can take: contiguous CPU tensors. CUDA tensors need NCCL, not wired yet,
    /// so a multi-rank run on a GPU (`--device`, the config or `auto`) stops here, at the
    /// first broadcast, before training.
    fn collective_input(t: &Tensor) -> Result<()> {
        if t.device() != tch::Device::Cpu {
            return Err(GanError::Input(
                "multi-process training runs on the CPU (Gloo); NCCL for CUDA is not wired \
                 yet (docs/DISTRIBUTED.md): use --device cpu"
                    .into(),
            ));
        }
        if !t.is_contiguous() {
            return Err(GanError::Input(
                "distributed: collectives take contiguous tensors".into(),
            ));
        }
        Ok(())
    }

    /// An owned `Group*` of cpp/dist.cpp (null for a world of 1).
    pub(super) struct Group(*mut c_void);

    // SAFETY: the group is only used behind the World's mutex, one call at a time; c10d's
    // backends may be driven from any thread.
    unsafe impl Send for Group {}

    impl Group {
        /// A world of 1 holds no group; more ranks join cpp/dist.cpp's.
        pub(super) fn new(spec: &Spec) -> Result<Self> {
            if spec.world == 1 {
                return Ok(Group(std::ptr::null_mut()));
            }
            let addr = CString::new(spec.master_addr.as_str())
                .map_err(|_| GanError::Input("MASTER_ADDR holds a NUL byte".into()))?;
            let iface = CString::new(std::env::var("GLOO_SOCKET_IFNAME").unwrap_or_default())
                .map_err(|_| GanError::Input("GLOO_SOCKET_IFNAME holds a NUL byte".into()))?;
            let mut error: *mut c_char = std::ptr::null_mut();
            // SAFETY: the strings live across the call; the shim returns an owned Group* or
            // null with a malloc'ed message.
            let g = unsafe {
                sys::ganlab_dist_new(
                    addr.as_ptr(),
                    c_int::from(spec.master_port),
                    spec.rank as c_int,
                    spec.world as c_int,
                    iface.as_ptr(),
                    spec.timeout.as_millis() as c_long,
                    &mut error,
                )
            };
            if g.is_null() {
                // SAFETY: set by the shim on failure.
                let m = unsafe { message(error) };
                return Err(GanError::Distributed(format!(
                    "rank {} of {} could not join the group at {}:{}: {m}",
                    spec.rank, spec.world, spec.master_addr, spec.master_port
                )));
            }
            Ok(Group(g))
        }

        fn call(
            &mut self,
            what: &str,
            f: impl FnOnce(*mut c_void, *mut *mut c_char) -> c_int,
        ) -> Result<()> {
            let mut error: *mut c_char = std::ptr::null_mut();
            if f(self.0, &mut error) != 0 {
                // SAFETY: set by the shim on failure.
                let m = unsafe { message(error) };
                return Err(GanError::Distributed(format!(
                    "{what} failed (a peer stopped or timed out): {m}"
                )));
            }
            Ok(())
        }

        pub(super) fn all_reduce_sum(&mut self, t: &Tensor) -> Result<()> {
            collective_input(t)?;
            let mut t = t.shallow_clone();
            // SAFETY: the group is live and t a live at::Tensor (sharing the caller's
            // storage) for the call.
            self.call("all-reduce", |g, e| unsafe {
                sys::ganlab_dist_all_reduce_sum(g, t.as_mut_ptr(), e)
            })
        }

        pub(super) fn broadcast(&mut self, t: &Tensor, root: usize) -> Result<()> {
            collective_input(t)?;
            let mut t = t.shallow_clone();
            // SAFETY: as all_reduce_sum.
            self.call("broadcast", |g, e| unsafe {
                sys::ganlab_dist_broadcast(g, t.as_mut_ptr(), root as c_int, e)
            })
        }

        pub(super) fn barrier(&mut self) -> Result<()> {
            // SAFETY: the group is live.
            self.call("barrier", |g, e| unsafe { sys::ganlab_dist_barrier(g, e) })
        }
    }

    impl Drop for Group {
        fn drop(&mut self) {
            if !self.0.is_null() {
                // SAFETY: owned, freed once.
                unsafe { sys::ganlab_dist_free(self.0) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without a process group every helper draws exactly what plain libtorch draws (so
    /// single-process runs are unchanged), even inside `sharded`.
    #[test]
    fn helpers_without_a_group_are_plain_draws() {
        let _rng = crate::test_rng_lock();
        let o = (Kind::Float, tch::Device::Cpu);
        let plain = |f: &dyn Fn() -> Tensor| {
            tch::manual_seed(7);
            f()
        };
        let a = plain(&|| Tensor::randn([6, 3], o));
        let b = plain(&|| sharded(|| randn(&[6, 3], o)));
        assert!(a.equal(&b));
        let a = plain(&|| Tensor::randint_low(2, 9, [5], (Kind::Int64, tch::Device::Cpu)));
        let b = plain(&|| sharded(|| randint(2, 9, &[5], (Kind::Int64, tch::Device::Cpu))));
        assert!(a.equal(&b));
        let a = plain(&|| Tensor::randn([8, 2], o));
        let b = plain(&|| sharded(|| randn_parts(2, &[8, 2], o)));
        assert!(a.equal(&b));
        let a = plain(&|| Tensor::randperm(10, (Kind::Int64, tch::Device::Cpu)).narrow(0, 0, 4));
        let b = plain(&|| distinct(10, 4, "items").unwrap());
        assert!(a.equal(&b));
        assert_eq!(shard_slice(&[1, 2, 3]), vec![1, 2, 3]);
        assert_eq!((rank(), world_size(), is_main()), (0, 1, true));
        let x = Tensor::ones([3], (Kind::Float, tch::Device::Cpu));
        all_reduce_mean(&x).unwrap();
        assert!(
            x.equal(&Tensor::ones([3], (Kind::Float, tch::Device::Cpu))),
            "no group: the tensor is left as it is"
        );
    }

    /// A batch larger than the set, and out-of-range specs, are errors naming the field.
    #[test]
    fn bad_sizes_and_specs_are_errors() {
        let e = distinct(3, 4, "items").unwrap_err().to_string();
        assert!(e.contains("run.batch_size") && e.contains("3 items"), "{e}");
        let spec = Spec {
            rank: 2,
            world: 2,
            local_rank: 0,
            master_addr: "127.0.0.1".into(),
            master_port: 29500,
            timeout: Duration::from_secs(1),
        };
        assert!(spec.validate().unwrap_err().to_string().contains("RANK=2"));
        let spec = Spec {
            rank: 0,
            master_port: 0,
            ..spec
        };
        assert!(spec
            .validate()
            .unwrap_err()
            .to_string()
            .contains("MASTER_PORT"));
    }
}
