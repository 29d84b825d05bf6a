//! The crash test (issue 18): `ganlab train` killed with SIGKILL at pseudo-random moments —
//! before its first checkpoint, between checkpoints and during checkpoint writes (one every
//! 2 steps) — is resumed each time, and the finished run equals an uninterrupted one bit
//! for bit (every tensor of the final checkpoint, every logged loss).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ganlab::train::checkpoint;

const CONFIG: &str = "[run]\nname = \"crash\"\nsteps = 500\nbatch_size = 64\nlog_every = 1\neval_every = 250\ncheckpoint_every = 2\neval_samples = 200\ndevice = \"cpu\"\n[model.mlp]\nhidden = 32\n";

fn cmd(args: &[&str], cwd: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ganlab"));
    c.args(args)
        .current_dir(cwd)
        .env_remove("LD_LIBRARY_PATH")
        .env("OMP_NUM_THREADS", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    c
}

/// The logged rows without wall-clock fields.
fn losses(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("wall_s");
            v
        })
        .collect()
}

#[test]
fn killed_runs_resume_bit_identically() {
    let d: PathBuf = std::env::temp_dir().join(format!("ganlab-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("crash.toml"), CONFIG).unwrap();
    let o = cmd(&["train", "crash.toml", "--out", "ref", "--quiet"], &d)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let run = d.join("run");
    let mut rng = ganlab::rng::SplitMix64::new(18);
    let (mut kills, mut before_first, mut mid_write) = (0, 0, 0);
    let has_tmp = |dir: &Path| {
        std::fs::read_dir(dir)
            .map(|r| {
                r.flatten()
                    .any(|e| e.path().extension().is_some_and(|x| x == "tmp"))
            })
            .unwrap_or(false)
    };
    for _ in 0..12 {
        let args: &[&str] = if run.join("config.toml").is_file() {
            &["train", "--resume", "run", "--quiet"]
        } else {
            &["train", "crash.toml", "--out", "run", "--quiet"]
        };
        let mut child = cmd(args, &d).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(rng.below(700)));
        if child.try_wait().unwrap().is_some() {
            let o = child.wait_with_output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            break;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        before_first += usize::from(!run.join("checkpoints/state.json").is_file());
        // A temporary file left behind: the kill landed inside an atomic write.
        mid_write += usize::from(has_tmp(&run) || has_tmp(&run.join("checkpoints")));
    }
    if !run.join("summary.json").is_file() {
        let o = cmd(&["train", "--resume", "run", "--quiet"], &d)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert!(
        kills >= 3,
        "only {kills} kills landed: the test did not test"
    );
    eprintln!(
        "{kills} kills: {before_first} before the first checkpoint, {mid_write} inside a write"
    );
    let (sa, mut ta) = checkpoint::load(&d.join("ref/checkpoints")).unwrap();
    let (sb, mut tb) = checkpoint::load(&run.join("checkpoints")).unwrap();
    ta.sort_by(|a, b| a.0.cmp(&b.0));
    tb.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!((sa.step, ta.len()), (sb.step, tb.len()));
    for ((ka, a), (kb, b)) in ta.iter().zip(&tb) {
        assert_eq!(ka, kb);
        assert!(a.equal(b), "{ka} differs after {kills} kills");
    }
    assert_eq!(losses(&d.join("ref")), losses(&run));
    std::fs::remove_dir_all(&d).unwrap();
}
