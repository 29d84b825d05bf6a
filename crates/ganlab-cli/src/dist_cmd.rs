//! `ganlab train --nproc N [--nnodes K --node-rank R --master-addr A --master-port P]`:
//! starts N worker processes of this binary on this machine with torchrun's variables
//! (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT) and waits for
//! them; a worker (any process started with WORLD_SIZE set, by us, torchrun or srun) joins
//! the c10d group of `ganlab::dist` before it trains (docs/DISTRIBUTED.md).

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use clap::Args;
use ganlab::dist::{self, Spec};
use ganlab::error::GanError;

/// Multi-process (data-parallel) training options of `ganlab train`.
#[derive(Args, Debug, Clone)]
pub struct DistArgs {
    /// Train data-parallel in N processes on this machine (c10d Gloo; `run.batch_size` is per
    /// process, so the global batch is N·batch_size). Each takes cores/N threads.
    #[arg(long, value_name = "N")]
    pub nproc: Option<usize>,
    /// Machines taking part (each runs `ganlab train --nproc N` with its own --node-rank).
    #[arg(long, default_value_t = 1)]
    pub nnodes: usize,
    /// This machine's index in [0, nnodes).
    #[arg(long, default_value_t = 0)]
    pub node_rank: usize,
    /// Address of node 0, where rank 0 serves the rendezvous store.
    #[arg(long, default_value = "127.0.0.1")]
    pub master_addr: String,
    /// Port of the rendezvous store on node 0.
    #[arg(long, default_value_t = 29500)]
    pub master_port: u16,
}

impl DistArgs {
    /// Whether this invocation launches workers.
    pub fn launches(&self) -> bool {
        self.nproc.is_some() || self.nnodes > 1
    }
}

/// Joins the process group when this process is a worker (WORLD_SIZE set): returns whether
/// it is one. Sets libtorch's threads to cores / LOCAL_WORLD_SIZE unless OMP_NUM_THREADS is
/// set. (A CUDA run on more than one rank is refused by `ganlab::dist` at its first
/// collective, whichever way the device was chosen: NCCL is not wired yet.)
pub fn join_if_worker() -> anyhow::Result<bool> {
    let Some(spec) = Spec::from_env()? else {
        return Ok(false);
    };
    if std::env::var_os("OMP_NUM_THREADS").is_none() {
        let local = std::env::var("LOCAL_WORLD_SIZE")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(1)
            .max(1);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        tch::set_num_threads((cores / local).max(1) as i32);
    }
    dist::init(&spec)?;
    Ok(true)
}

/// Starts `nproc` workers running `args` (a `train` command line without the launcher's
/// flags, with an explicit --out or --resume) and waits for all of them. When one fails,
/// the others get [`GRACE`] to stop on their own (a peer's failure reaches them at their
/// next collective), then are killed, as torchrun's agent does; the error names the first
/// rank that failed. Without this launcher (srun, torchrun) a dead peer ends the others at
/// the collective timeout, GANLAB_DIST_TIMEOUT_S.
pub fn launch(d: &DistArgs, args: &[String]) -> anyhow::Result<()> {
    let nproc = d.nproc.unwrap_or(1);
    if nproc == 0 || nproc > 1024 {
        anyhow::bail!(GanError::config(
            "--nproc",
            format!("must be in [1, 1024], got {nproc}")
        ));
    }
    if d.nnodes == 0 || d.node_rank >= d.nnodes {
        anyhow::bail!(GanError::config(
            "--node-rank",
            format!(
                "must be in [0, {}) (--nnodes), got {}",
                d.nnodes, d.node_rank
            )
        ));
    }
    let world = nproc * d.nnodes;
    let exe = std::env::current_exe()?;
    let mut children: Vec<(usize, Child)> = Vec::new();
    for local in 0..nproc {
        let rank = d.node_rank * nproc + local;
        let mut cmd = Command::new(&exe);
        cmd.args(args)
            .env("RANK", rank.to_string())
            .env("WORLD_SIZE", world.to_string())
            .env("LOCAL_RANK", local.to_string())
            .env("LOCAL_WORLD_SIZE", nproc.to_string())
            .env("MASTER_ADDR", &d.master_addr)
            .env("MASTER_PORT", d.master_port.to_string());
        if rank != 0 && !args.iter().any(|a| a == "--quiet") {
            cmd.arg("--quiet");
        }
        match cmd.spawn() {
            Ok(c) => children.push((rank, c)),
            Err(e) => {
                for (_, c) in &mut children {
                    let _ = c.kill();
                }
                anyhow::bail!("starting rank {rank}: {e}");
            }
        }
    }
    wait_all(children)
}

/// How long the launcher lets the other workers stop by themselves after one failed.
pub const GRACE: Duration = Duration::from_secs(10);

fn wait_all(mut children: Vec<(usize, Child)>) -> anyhow::Result<()> {
    let mut failed: Option<(usize, std::process::ExitStatus)> = None;
    let mut since: Option<Instant> = None;
    while !children.is_empty() {
        let mut i = 0;
        while i < children.len() {
            match children[i].1.try_wait()? {
                Some(status) => {
                    let (rank, _) = children.remove(i);
                    if !status.success() && failed.is_none() {
                        failed = Some((rank, status));
                        since = Some(Instant::now());
                    }
                }
                None => i += 1,
            }
        }
        if since.is_some_and(|t| t.elapsed() > GRACE) {
            for (_, c) in &mut children {
                let _ = c.kill();
                let _ = c.wait();
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    match failed {
        // A worker's exit 2 is a user error it has already explained (a config field, a
        // missing file): the launcher exits 2 as well, as a single process would.
        Some((rank, status)) if status.code() == Some(2) => anyhow::bail!(GanError::Input(
            format!("rank {rank} stopped on the error above; the others were stopped")
        )),
        Some((rank, status)) => anyhow::bail!(GanError::Distributed(format!(
            "rank {rank} failed ({status}); the others were stopped"
        ))),
        None => Ok(()),
    }
}

/// The worker command line of `ganlab train` (launcher flags dropped, --out explicit).
pub fn worker_args(
    config: Option<&PathBuf>,
    out: Option<&PathBuf>,
    resume: Option<&PathBuf>,
    (steps, seed, sets): (Option<u64>, Option<u64>, &[String]),
    device: Option<&str>,
    quiet: bool,
) -> Vec<String> {
    let mut a = vec!["train".to_string()];
    if let Some(c) = config {
        a.push(c.display().to_string());
    }
    if let Some(o) = out {
        a.extend(["--out".into(), o.display().to_string()]);
    }
    if let Some(r) = resume {
        a.extend(["--resume".into(), r.display().to_string()]);
    }
    for s in sets {
        a.extend(["--set".into(), s.clone()]);
    }
    if let Some(s) = steps {
        a.extend(["--steps".into(), s.to_string()]);
    }
    if let Some(s) = seed {
        a.extend(["--seed".into(), s.to_string()]);
    }
    if let Some(d) = device {
        a.extend(["--device".into(), d.to_string()]);
    }
    if quiet {
        a.push("--quiet".into());
    }
    a
}
