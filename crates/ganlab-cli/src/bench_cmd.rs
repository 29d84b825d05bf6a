//! `ganlab bench`: each workload in its own ganlab process and its own PyTorch process
//! (bench/pytorch_ref.py), one after the other in the same sitting; prints medians, the
//! ratio ganlab / PyTorch and peak RSS, and writes the table as JSON.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use clap::Args;
use ganlab::bench::{self, Measurement, Protocol};
use ganlab::error::GanError;
use serde_json::json;

/// Arguments of `ganlab bench`.
#[derive(Args, Debug)]
pub(crate) struct BenchArgs {
    /// Comma-separated workloads (default: all; an unknown name lists them;
    /// inception_features needs scripts/fetch-data inception).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Untimed calls before timing (default: per workload).
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Calls per timed block (default: per workload, about a second each).
    #[arg(long)]
    pub iters: Option<usize>,
    /// Timed blocks per process; the table shows the median over all blocks.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Rounds: each runs every workload once in ganlab and once in PyTorch, alternating.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// libtorch intra-op threads on both sides (0: libtorch's default).
    #[arg(long, default_value_t = 0)]
    pub threads: i64,
    /// Python with torch for the reference side (scripts/bench passes the set-up venv's).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// The PyTorch reference script.
    #[arg(long, default_value = "bench/pytorch_ref.py")]
    pub reference: PathBuf,
    /// Also write the table as JSON here (must not exist).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Internal: run one workload in this process and print its measurement.
    #[arg(long, hide = true)]
    pub worker: Option<String>,
}

/// Runs `ganlab bench`: checks the workload names, then times them (or, with `--worker`,
/// one workload in this process).
pub(crate) fn command(b: BenchArgs) -> anyhow::Result<()> {
    let workloads = if b.only.is_empty() {
        ganlab::bench::WORKLOADS
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        b.only
    };
    for w in &workloads {
        if !ganlab::bench::WORKLOADS.contains(&w.as_str()) {
            return Err(GanError::config(
                "--only",
                format!(
                    "unknown workload {w:?}; known: {}",
                    ganlab::bench::WORKLOADS.join(", ")
                ),
            )
            .into());
        }
    }
    let o = BenchOptions {
        workloads,
        warmup: b.warmup,
        iters: b.iters,
        repeats: b.repeats.max(1),
        rounds: b.rounds.max(1),
        threads: b.threads,
        python: b.python,
        reference: b.reference,
        json: b.json,
    };
    match &b.worker {
        Some(w) => worker(w, &o),
        None => run(&o),
    }
}

/// Options of `ganlab bench`.
pub struct BenchOptions {
    pub workloads: Vec<String>,
    pub warmup: Option<usize>,
    pub iters: Option<usize>,
    pub repeats: usize,
    pub rounds: usize,
    pub threads: i64,
    pub python: Option<PathBuf>,
    pub reference: PathBuf,
    pub json: Option<PathBuf>,
}

fn protocol_args(o: &BenchOptions, w: &str) -> Vec<String> {
    let iters = o.iters.unwrap_or_else(|| bench::default_iters(w));
    vec![
        "--warmup".into(),
        o.warmup
            .unwrap_or_else(|| bench::default_warmup(w))
            .to_string(),
        "--iters".into(),
        iters.to_string(),
        "--repeats".into(),
        o.repeats.to_string(),
        "--threads".into(),
        o.threads.to_string(),
    ]
}

/// Runs `cmd` and parses the last stdout line as a [`Measurement`].
fn measure(mut cmd: Command, what: &str) -> anyhow::Result<Measurement> {
    let out = cmd
        .output()
        .with_context(|| format!("could not start {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or("");
    serde_json::from_str(line).with_context(|| format!("{what} printed no result line: {line:?}"))
}

/// The worker side: one workload in this process, one JSON line on stdout.
pub fn worker(workload: &str, o: &BenchOptions) -> anyhow::Result<()> {
    if o.threads > 0 {
        tch::set_num_threads(o.threads as i32);
    }
    let p = Protocol {
        warmup: o.warmup.unwrap_or_else(|| bench::default_warmup(workload)),
        iters: o.iters.unwrap_or_else(|| bench::default_iters(workload)),
        repeats: o.repeats,
    };
    let m = bench::run(workload, p)?;
    println!("{}", serde_json::to_string(&m)?);
    Ok(())
}

fn mib(kb: Option<u64>) -> String {
    kb.map_or("-".into(), |k| format!("{:.0}", k as f64 / 1024.0))
}

/// The parent side.
pub fn run(o: &BenchOptions) -> anyhow::Result<()> {
    if let Some(j) = &o.json {
        if j.exists() {
            return Err(ganlab::error::GanError::Input(format!(
                "--json {} exists; not overwriting it",
                j.display()
            ))
            .into());
        }
    }
    let python = o.python.clone().unwrap_or_else(|| PathBuf::from("python3"));
    if !o.reference.is_file() {
        bail!(
            "PyTorch reference script {} not found (run from the repository root, or pass --reference)",
            o.reference.display()
        );
    }
    let exe = std::env::current_exe().context("locating the ganlab binary")?;
    // Rounds alternate ganlab and PyTorch so that a slow spell of a shared machine hits
    // both sides; rates are pooled over rounds.
    let mut pooled: Vec<(Measurement, Measurement)> = Vec::new();
    for round in 0..o.rounds {
        for (i, w) in o.workloads.iter().enumerate() {
            eprintln!("bench: round {}/{} {w}", round + 1, o.rounds);
            let mut ours = Command::new(&exe);
            ours.args(["bench", "--worker", w])
                .args(protocol_args(o, w));
            let ours = measure(ours, &format!("ganlab worker {w}"))?;
            let mut theirs = Command::new(&python);
            theirs.arg(&o.reference).arg(w).args(protocol_args(o, w));
            let what = format!("{} {} {w}", python.display(), o.reference.display());
            let theirs = measure(theirs, &what)?;
            match pooled.get_mut(i) {
                None => pooled.push((ours, theirs)),
                Some((a, b)) => {
                    a.absorb(ours);
                    b.absorb(theirs);
                }
            }
        }
    }
    let peak = peak_gflops(o.threads);
    eprintln!("bench: measured fp32 peak of this machine (best of a 2048² matmul and a 4×4 stride-2 conv): {peak:.1} GFLOP/s");
    println!(
        "{:<20} {:>14} {:>14} {:>7} {:>9} {:>9} {:>9} {:>7}",
        "workload", "ganlab/s", "pytorch/s", "ratio", "rss MiB", "py MiB", "GFLOP/s", "% peak"
    );
    let mut rows = Vec::new();
    for (ours, theirs) in pooled {
        let ratio = ours.median() / theirs.median();
        let flops = count_flops(&python, o, &ours.workload);
        let gflops = flops.map(|f| f * ours.median() / 1e9);
        println!(
            "{:<20} {:>14.1} {:>14.1} {:>6.2}x {:>9} {:>9} {:>9} {:>7}",
            ours.workload,
            ours.median(),
            theirs.median(),
            ratio,
            mib(ours.peak_rss_kb),
            mib(theirs.peak_rss_kb),
            gflops.map_or("-".into(), |g| format!("{g:.1}")),
            gflops.map_or("-".into(), |g| format!("{:.1}%", 100.0 * g / peak))
        );
        rows.push(json!({
            "workload": ours.workload,
            "ganlab_median": ours.median(),
            "pytorch_median": theirs.median(),
            "ratio": ratio,
            "flops_per_item": flops,
            "ganlab_gflops": gflops,
            "peak_gflops": peak,
            "ganlab": ours,
            "pytorch": theirs,
        }));
    }
    if let Some(j) = &o.json {
        let doc = json!({
            "rounds": o.rounds,
            "repeats": o.repeats,
            "warmup": o.warmup,
            "rows": rows,
        });
        write_new(j, &serde_json::to_string_pretty(&doc)?)?;
        println!("wrote {}", j.display());
    }
    Ok(())
}

/// FLOPs of one item of `workload`, counted once by the reference script (PyTorch's
/// FlopCounterMode: matmuls and convolutions, forward and backward); None when it cannot.
fn count_flops(python: &Path, o: &BenchOptions, workload: &str) -> Option<f64> {
    let out = Command::new(python)
        .arg(&o.reference)
        .arg(workload)
        .arg("--flops")
        .args(["--threads", &o.threads.to_string()])
        .output()
        .ok()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last()?).ok()?;
    v["flops_per_item"].as_f64()
}

/// This machine's measured fp32 peak: the best rate of two dense kernels in libtorch, a
/// 2048×2048 matmul (2n³ FLOPs) and a 4×4 stride-2 convolution 256 → 512 channels on
/// [64, 256, 16, 16] as in DCGAN/PatchGAN (2·N·C_out·H_out·W_out·C_in·16 FLOPs; oneDNN's
/// convolutions beat MKL's sgemm on this machine; a 3×3 stride-1 one is left out because
/// Winograd would count FLOPs it does not perform),
/// each the best of 5 timed calls after 2 untimed ones, on `threads` threads (0: default).
fn peak_gflops(threads: i64) -> f64 {
    use tch::{Device, Kind, Tensor};
    if threads > 0 {
        tch::set_num_threads(threads as i32);
    }
    let best = |f: &dyn Fn() -> Tensor| {
        let mut best = f64::INFINITY;
        for i in 0..7 {
            let t0 = std::time::Instant::now();
            std::hint::black_box(f().double_value(&[0, 0]));
            if i >= 2 {
                best = best.min(t0.elapsed().as_secs_f64());
            }
        }
        best
    };
    let o = (Kind::Float, Device::Cpu);
    let n = 2048;
    let (a, b) = (Tensor::randn([n, n], o), Tensor::randn([n, n], o));
    let matmul = 2.0 * (n as f64).powi(3) / best(&|| a.matmul(&b));
    let x = Tensor::randn([64, 256, 16, 16], o);
    let w = Tensor::randn([256, 256, 3, 3], o);
    let conv_flops = 2.0 * 64.0 * 256.0 * 256.0 * 256.0 * 9.0;
    let conv = conv_flops
        / best(&|| {
            x.conv2d(&w, None::<Tensor>, [1, 1], [1, 1], [1, 1], 1)
                .flatten(0, 2)
        });
    matmul.max(conv) / 1e9
}

fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
