//! `ganlab bench`: each workload in its own ganlab process and its own PyTorch process
//! (bench/pytorch_ref.py), one after the other in the same sitting; prints medians, the
//! ratio ganlab / PyTorch and peak RSS, and writes the table as JSON.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use ganlab::bench::{self, Measurement, Protocol};
use serde_json::json;

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
            bail!("{} exists; not overwriting it", j.display());
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
    println!(
        "{:<20} {:>14} {:>14} {:>7} {:>9} {:>9}",
        "workload", "ganlab/s", "pytorch/s", "ratio", "rss MiB", "py MiB"
    );
    let mut rows = Vec::new();
    for (ours, theirs) in pooled {
        let ratio = ours.median() / theirs.median();
        println!(
            "{:<20} {:>14.1} {:>14.1} {:>6.2}x {:>9} {:>9}",
            ours.workload,
            ours.median(),
            theirs.median(),
            ratio,
            mib(ours.peak_rss_kb),
            mib(theirs.peak_rss_kb)
        );
        rows.push(json!({
            "workload": ours.workload,
            "ganlab_median": ours.median(),
            "pytorch_median": theirs.median(),
            "ratio": ratio,
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
