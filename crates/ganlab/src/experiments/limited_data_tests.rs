//! Tests of the limited-data experiment (plan, tables, a tiny resumable run).

use super::limited_data::*;
use crate::metrics::extractors::FirstValues;

/// The paired summary has a row per (family, images) with both arms scored, and is left
/// out when one arm ran alone (`experiment.methods=[diffusion]`); difference = diffusion
/// − vanilla of the means (here 55 − 52 = +3.0, by hand).
#[test]
fn summary_only_for_scored_pairs() {
    let row = |method: &str, fid: f64| Row {
        family: "dcgan".into(),
        method: method.into(),
        images: 200,
        seed: 0,
        fid: Some(fid),
        fid_samples: 5000,
        fid_at: vec![],
        d_probe: vec![],
        d_real: 0.9,
        d_fake: 0.1,
        final_t: 0.0,
        train_seconds: 1.0,
    };
    let one = markdown(&[row("diffusion", 56.2)]);
    assert!(
        one.contains("| 56.2 |") && !one.contains("difference"),
        "{one}"
    );
    let both = markdown(&[row("vanilla", 52.0), row("diffusion", 55.0)]);
    assert!(
        both.contains("| 52.0 ± 0.0 | 55.0 ± 0.0 | +3.0 (n = 1) |"),
        "{both}"
    );
}

/// The plan's arms differ in diffusion and image count only (within a family); `--set`
/// reaches every arm and the experiment keys change the plan; a tiny run on a synthetic
/// IDX set trains, scores (flat features), resumes without training again, and writes
/// its tables and curves.
#[test]
fn plan_and_tiny_run() {
    let _rng = crate::test_rng_lock();
    let p = plan(&[]).unwrap();
    assert_eq!(p.arms.len(), 12);
    assert_eq!(p.fid_samples, 5000);
    let q = plan(&[
        "experiment.subsets=[]".into(),
        "experiment.table8=[projected]".into(),
    ])
    .unwrap();
    assert_eq!(q.arms.len(), 2);
    assert!(q
        .arms
        .iter()
        .all(|a| a.family == "projected" && a.images == 0));
    assert!(q.arms.iter().all(|a| a.cfg.model.projected.enabled));
    let on: Vec<bool> = q.arms.iter().map(|a| a.cfg.diffusion.enabled).collect();
    assert_eq!(on, [false, true]);
    let e = plan(&["experiment.table8=[wgan]".into()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("experiment.table8") && e.contains("wgan"), "{e}");
    let (a, b) = (&p.arms[0].cfg, &p.arms[1].cfg);
    assert_eq!((a.diffusion.enabled, b.diffusion.enabled), (false, true));
    assert_eq!(
        (a.data.idx.max_images, p.arms[4].cfg.data.idx.max_images),
        (200, 5000)
    );
    let m = plan(&[
        "experiment.methods=[diffusion]".into(),
        "experiment.table8=[sngan]".into(),
        "diffusion.t_max=500".into(),
    ])
    .unwrap();
    let got: Vec<(&str, i64, bool, usize)> = m
        .arms
        .iter()
        .map(|a| {
            let c = &a.cfg;
            (
                a.family.as_str(),
                a.images,
                c.diffusion.enabled,
                c.diffusion.t_max,
            )
        })
        .collect();
    let want = [200, 1000, 5000].map(|n| ("dcgan", n, true, 500));
    assert_eq!(got, [&want[..], &[("sngan", 0, true, 500)]].concat());
    let twice = plan(&["experiment.methods=[diffusion,vanilla,diffusion]".into()]).unwrap();
    let names: Vec<_> = twice.arms.iter().map(|a| a.method.as_str()).collect();
    assert_eq!(
        names[..2],
        ["vanilla", "diffusion"],
        "each method once, canonical order"
    );
    assert_eq!(twice.arms.len(), p.arms.len());
    for bad in ["[]", "[diffusion,ada]"] {
        let e = plan(&[format!("experiment.methods={bad}")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("experiment.methods"), "{bad}: {e}");
    }
    let e = plan(&["experiment.colour=1".into()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("experiment.colour"), "{e}");
    // fid_steps: checkpoints every 250 to step 2,000 (the preset) are written at 250, ...,
    // 2,000; keeping step 500 needs the 7 written from 500 on (hand count), raised from 3.
    let f = plan(&[
        "experiment.fid_steps=[1000,500]".into(),
        "experiment.table8=false".into(),
    ])
    .unwrap();
    assert_eq!(f.fid_steps, [500, 1000]);
    assert!(f.arms.iter().all(|a| a.cfg.run.keep_checkpoints == 7));
    for bad in ["[300]", "[2000]", "[five]", "[0]"] {
        let e = plan(&[
            format!("experiment.fid_steps={bad}"),
            "experiment.table8=false".into(),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("experiment.fid_steps"), "{bad}: {e}");
    }

    let data = std::env::temp_dir().join(format!("ganlab-ld-data-{}", std::process::id()));
    std::fs::create_dir_all(&data).unwrap();
    for (file, n) in [
        ("train-images-idx3-ubyte", 24u32),
        ("t10k-images-idx3-ubyte", 16),
    ] {
        let mut bytes = vec![0u8, 0, 8, 3];
        for d in [n, 28, 28] {
            bytes.extend(d.to_be_bytes());
        }
        bytes.extend((0..n * 28 * 28).map(|i| ((i * 31) % 256) as u8));
        std::fs::write(data.join(file), bytes).unwrap();
    }
    let sets: Vec<String> = [
        "experiment.subsets=[8]".to_string(),
        "experiment.fid_samples=12".into(),
        "experiment.table8=false".into(),
        format!("data.idx.dir={:?}", data),
        "run.steps=4".into(),
        "experiment.fid_steps=[2]".into(),
        "run.eval_every=2".into(),
        "run.checkpoint_every=2".into(),
        "run.eval_samples=8".into(),
        "run.device=\"cpu\"".into(),
        "model.dcgan.width=4".into(),
    ]
    .into();
    let p = plan(&sets).unwrap();
    assert_eq!(p.arms.len(), 2);
    assert_eq!(p.arms[1].cfg.run.steps, 4);
    assert_eq!(p.fid_steps, [2]);
    let out = std::env::temp_dir().join(format!("ganlab-ld-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let rows = run(&p, &[0], &out, Some(&FirstValues(6)), false).unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.fid.is_some_and(f64::is_finite)));
    assert!(rows
        .iter()
        .all(|r| r.fid_at.len() == 1 && r.fid_at[0].0 == 2 && r.fid_at[0].1.is_finite()));
    // The probe at step 2 and at the end: the 8 training images (all of the subset), 16
    // held-out (the whole synthetic test split), 1,000 samples; σ scores in (0, 1).
    for r in &rows {
        let steps: Vec<u64> = r.d_probe.iter().map(|(s, _)| *s).collect();
        assert_eq!(steps, [2, 4]);
        for (_, q) in &r.d_probe {
            assert_eq!((q.n_train, q.n_held, q.n_fake), (8, 16, 1000));
            for v in [q.d_train, q.d_held, q.d_fake] {
                assert!(v > 0.0 && v < 1.0, "{q:?}");
            }
        }
    }
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(md.contains("| seed | step 2 | final |"), "{md}");
    assert!(
        md.contains("| D(train) | D(held-out) | D(fake) | r_v |"),
        "{md}"
    );
    for f in ["results.md", "results.json", "curves.svg", "report.html"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let again = run(&p, &[0], &out, Some(&FirstValues(6)), false).unwrap();
    assert_eq!(
        again, rows,
        "a finished experiment is reused, not trained again"
    );
    // A larger budget extends the finished runs and scores them at their new final step (a
    // cache keyed by anything but the step would report step 4's FID as step 6's).
    let longer: Vec<String> = sets
        .iter()
        .map(|s| {
            if s == "run.steps=4" {
                "run.steps=6".into()
            } else {
                s.clone()
            }
        })
        .collect();
    let extended = run(
        &plan(&longer).unwrap(),
        &[0],
        &out,
        Some(&FirstValues(6)),
        false,
    )
    .unwrap();
    for (r, before) in extended.iter().zip(&rows) {
        assert_eq!(r.d_probe.last().unwrap().0, 6);
        assert_ne!(r.fid, before.fid, "{} scored at step 6", r.method);
        assert_eq!(r.fid_at, before.fid_at, "step 2's score is reused");
    }
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::remove_dir_all(&data).unwrap();
}
