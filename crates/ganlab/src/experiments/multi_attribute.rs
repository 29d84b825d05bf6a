//! `ganlab experiment multi-attribute-emoji`: the multi-attribute paper's comparison
//! (multi-attribute-translation-supplement.txt Tables 1–2) at CPU scale on the emoji people
//! set (`scripts/fetch-data emoji-people`), end to end:
//!
//! 1. once: `classifier`, the judge (configs/attribute-classifier-emoji.toml), trained on the
//!    real training images; its test accuracy on real images bounds what Table 1 can show;
//! 2. at every seed, at equal budget (steps, batch, D steps per G step, data): `stargan`
//!    (configs/stargan-emoji.toml) and `bridgegan` (configs/bridgegan-emoji.toml);
//! 3. the scores, for StarGAN, ours label-based and ours reference-based, per attribute, on
//!    every test image with that attribute flipped (the conflict rule applied; references:
//!    the next test image with the target value):
//!    - **accuracy** (Table 1): the share of edits the judge reads as the target value;
//!    - **FID** (Table 2): the edits against the training images, FID Inception features (as
//!      StarGAN v2 scores against the target domain's training images). With a few hundred
//!      test images these FIDs are biased upwards; they compare methods at equal n only;
//!    - **diversity** (StarGAN v2's protocol with Inception features instead of LPIPS, whose
//!      AlexNet weights we do not ship): for each of the first 16 test images, attribute
//!      (i mod k) flipped 10 times — with 10 noise draws (label-based) or 10 references —,
//!      the mean L2 distance between the Inception pool features of the 45 pairs, averaged.
//!      StarGAN is deterministic: 0.
//!
//! Rerunning resumes every stage (`experiments::train_or_resume`). `--set` goes to the
//! configs with the section (`run.*` to both translation tasks, `classifier.run.*` to the
//! judge); `--set data.dir=...` to all three.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::translation::with_overrides;
use crate::error::{GanError, IoContext, Result};
use crate::io::write_atomic;
use crate::metrics::extractors::{extract_all, FeatureExtractor, InceptionFid};
use crate::metrics::features::{frechet_distance, FeatureStats};
use crate::run::Run;
use crate::tasks::attribute_data::{hit_rate, AttributeData};
use crate::tasks::{AttributeEditor, Mode};
use crate::train::{step_seed, TrainConfig};

/// The marker of this experiment's directory.
const MARKER: &str = "experiment.json";

/// The judge's config and the two arms'.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The attribute classifier.
    pub classifier: TrainConfig,
    /// (name, config): stargan, bridgegan.
    pub arms: Vec<(String, TrainConfig)>,
}

/// The built-in plan after `--set` entries (see module docs).
pub fn plan(sets: &[String]) -> Result<Plan> {
    let load = |text: &str, name: &str| TrainConfig::from_toml_str(text, Path::new(name));
    let mut expanded = Vec::new();
    for s in sets {
        match s.strip_prefix("data.") {
            Some(rest) => {
                for sec in ["stargan", "bridgegan", "attribute_classifier"] {
                    expanded.push(format!("{sec}.data.{rest}"));
                }
            }
            None => expanded.push(s.clone()),
        }
    }
    let cls_sets: Vec<String> = expanded
        .iter()
        .filter_map(|s| match s.strip_prefix("classifier.") {
            Some(rest) => Some(rest.to_string()),
            None => s.starts_with("attribute_classifier.").then(|| s.clone()),
        })
        .collect();
    let arm_sets: Vec<String> = expanded
        .iter()
        .filter(|s| !s.starts_with("classifier.") && !s.starts_with("attribute_classifier."))
        .cloned()
        .collect();
    let arms = vec![
        (
            "stargan".to_string(),
            load(
                include_str!("../../../../configs/stargan-emoji.toml"),
                "configs/stargan-emoji.toml",
            )?,
        ),
        (
            "bridgegan".to_string(),
            load(
                include_str!("../../../../configs/bridgegan-emoji.toml"),
                "configs/bridgegan-emoji.toml",
            )?,
        ),
    ];
    let arms = with_overrides(arms, &arm_sets)?;
    let classifier = load(
        include_str!("../../../../configs/attribute-classifier-emoji.toml"),
        "configs/attribute-classifier-emoji.toml",
    )?;
    let classifier = with_overrides(vec![("classifier".into(), classifier)], &cls_sets)?
        .remove(0)
        .1;
    let (a, b) = (&arms[0].1.stargan, &arms[1].1.bridgegan);
    let c = &classifier.attribute_classifier;
    if a.data != b.data || c.data.attributes != b.data.attributes || c.data.dir != b.data.dir {
        return Err(GanError::Input(
            "multi-attribute-emoji compares StarGAN and ours on the same data: stargan.data, bridgegan.data and the classifier's attributes and dir must agree (set data.* for all three)".into(),
        ));
    }
    if (a.n_critic, arms[0].1.run.steps, arms[0].1.run.batch_size)
        != (b.n_critic, arms[1].1.run.steps, arms[1].1.run.batch_size)
    {
        return Err(GanError::Input(
            "multi-attribute-emoji needs equal budgets: run.steps, run.batch_size and n_critic of stargan and bridgegan must agree".into(),
        ));
    }
    Ok(Plan { classifier, arms })
}

/// One method's scores at one seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// StarGAN, ours (label-based) or ours (reference-based).
    pub method: String,
    /// Seed of the run.
    pub seed: u64,
    /// The judge's accuracy per attribute (Table 1).
    pub accuracy: Vec<f64>,
    /// FID per attribute (Table 2); empty without the Inception.
    pub fid: Vec<f64>,
    /// Mean pairwise Inception-feature distance among 10 outputs per source.
    pub diversity: Option<f64>,
}

/// Features [n, d] of images (CPU, in batches).
fn features(ex: &dyn FeatureExtractor, x: &Tensor) -> Result<Tensor> {
    Ok(extract_all(ex, x, &mut crate::progress::Silent)?.0)
}

/// Diversity (see module docs) of `edit` with noise (`reference` false) or references.
fn diversity(
    data: &AttributeData,
    ed: &dyn AttributeEditor,
    ex: &dyn FeatureExtractor,
    reference: bool,
) -> Result<f64> {
    let t = data
        .test
        .as_ref()
        .ok_or_else(|| GanError::Input("no test split".into()))?;
    let n = 16.min(t.len());
    let (x, y) = data.test_batch(n)?;
    let k = ed.attributes().len();
    let mates = ed.mates();
    let y_t = y.copy();
    for i in 0..n {
        let yi =
            crate::data::attributes::flip_attribute(&mates, &y.narrow(0, i, 1), i as usize % k);
        y_t.narrow(0, i, 1).copy_(&yi);
    }
    let labels: Vec<f32> = Vec::try_from(t.labels.flatten(0, -1))?;
    let mut outs = Vec::new();
    for r in 0..10usize {
        let x_r = if reference {
            // The (r+1)-th next test image with the flipped attribute's target value.
            let idx: Vec<i64> = (0..n as usize)
                .map(|i| {
                    let j = i % k;
                    let want = 1.0 - labels[i * k + j];
                    let found: Vec<usize> = (1..t.len() as usize)
                        .map(|o| (i + o) % t.len() as usize)
                        .filter(|&c| labels[c * k + j] == want)
                        .collect();
                    found.get(r % found.len().max(1)).copied().unwrap_or(i) as i64
                })
                .collect();
            Some(t.images_at(&Tensor::from_slice(&idx), x.device()))
        } else {
            None
        };
        let alpha = if reference { 0.0 } else { 1.0 };
        outs.push(
            ed.edit(&x, &y, &y_t, x_r.as_ref(), alpha)?
                .to_device(Device::Cpu),
        );
    }
    let f = features(ex, &Tensor::cat(&outs, 0))?
        .view([10, n, -1])
        .transpose(0, 1);
    let f = f.to_kind(Kind::Double);
    let d = Tensor::cdist(&f, &f, 2.0, None::<i64>); // [n, 10, 10]
    Ok(d.sum(Kind::Double).double_value(&[]) / (n as f64 * 90.0))
}

/// Table 1, Table 2 and diversity of one editor in one mode.
fn score(
    method: &str,
    seed: u64,
    data: &AttributeData,
    ed: &dyn AttributeEditor,
    judge: &dyn Fn(&Tensor) -> Result<Tensor>,
    fid: Option<(&dyn FeatureExtractor, &FeatureStats)>,
    reference: bool,
) -> Result<Row> {
    tch::manual_seed(step_seed(seed, u64::MAX - 7));
    let alpha = if reference { 0.0 } else { 1.0 };
    let err = std::cell::RefCell::new(None);
    let edit = |x: &Tensor, a: &Tensor, b: &Tensor, r: Option<&Tensor>| {
        ed.edit(x, a, b, r, alpha).unwrap_or_else(|e| {
            *err.borrow_mut() = Some(e);
            x.shallow_clone()
        })
    };
    let (mut accuracy, mut fids) = (Vec::new(), Vec::new());
    for j in 0..ed.attributes().len() {
        let (e, want) = data.flips(i64::MAX, j, &edit, reference)?;
        if let Some(e) = err.borrow_mut().take() {
            return Err(e);
        }
        let logits = Tensor::cat(
            &(0..e.size()[0])
                .step_by(64)
                .map(|a| {
                    judge(&e.narrow(0, a, 64.min(e.size()[0] - a)))
                        .map(|l| l.to_device(Device::Cpu))
                })
                .collect::<Result<Vec<_>>>()?,
            0,
        );
        accuracy.push(hit_rate(&logits.narrow(1, j as i64, 1), &want));
        if let Some((ex, real)) = fid {
            let fake = FeatureStats::from_features(&features(ex, &e)?)?;
            fids.push(frechet_distance(real, &fake)?);
        }
    }
    let diversity = match fid {
        Some((ex, _)) => Some(diversity(data, ed, ex, reference)?),
        None => None,
    };
    Ok(Row {
        method: method.into(),
        seed,
        accuracy,
        fid: fids,
        diversity,
    })
}

/// Runs (or resumes) the plan into `out` at `seeds`; writes results.json, results.md and
/// grid.png. Returns the judge's summary and the rows.
pub fn run(
    plan: &Plan,
    seeds: &[u64],
    out: &Path,
    show_progress: bool,
) -> Result<(serde_json::Value, Vec<Row>)> {
    if seeds.is_empty() {
        return Err(GanError::config("--seeds", "needs at least one seed"));
    }
    let marker = out.join(MARKER);
    if out.exists() && !marker.is_file() && std::fs::read_dir(out).at(out)?.next().is_some() {
        return Err(GanError::Input(format!(
            "{} is not empty and not a multi-attribute-emoji experiment directory; choose a new one",
            out.display()
        )));
    }
    std::fs::create_dir_all(out).at(out)?;
    write_atomic(&marker, br#"{"experiment": "multi-attribute-emoji"}"#)?;
    let label = |s: &str| show_progress.then(|| s.to_string());
    let cls_dir = out.join("classifier");
    let judge_summary =
        super::train_or_resume(&plan.classifier, &cls_dir, label("classifier").as_deref())?;
    let judge_run = Run::open(&cls_dir)?;
    let judge_cls = judge_run
        .task()
        .attribute_classifier()
        .ok_or_else(|| GanError::Input(format!("{} is not a classifier run", cls_dir.display())))?;
    let judge = |x: &Tensor| judge_cls.logits(x);
    let bcfg = &plan.arms[1].1;
    let device = crate::device::resolve_device(&bcfg.run.device)?;
    let data = AttributeData::new(&bcfg.bridgegan.data, 8, seeds[0], Mode::Train, device)?;
    let inception = &bcfg.bridgegan.data.inception;
    let ex = if inception.is_file() {
        Some(InceptionFid::load(inception, device)?)
    } else {
        None
    };
    // The training images' Inception statistics, computed once per experiment directory
    // (named by the data config and image count, so other data is not mistaken for them).
    let real = match (&ex, &data.train) {
        (Some(ex), Some(t)) => {
            let key = crate::metrics::eval::content_hash(
                format!("{:?} {}", bcfg.bridgegan.data, t.len()).as_bytes(),
            );
            let cache = out.join(format!("real_train_stats-{key:016x}.safetensors"));
            if cache.is_file() {
                Some(FeatureStats::load(&cache)?)
            } else {
                let idx = Tensor::arange(t.len(), (Kind::Int64, Device::Cpu));
                let st =
                    FeatureStats::from_features(&features(ex, &t.images_at(&idx, Device::Cpu))?)?;
                st.save(&cache)?;
                Some(st)
            }
        }
        _ => None,
    };
    let fid = match (&ex, &real) {
        (Some(e), Some(r)) => Some((e as &dyn FeatureExtractor, r)),
        _ => None,
    };
    let mut rows = Vec::new();
    let mut grid_rows: Vec<Tensor> = Vec::new();
    for &seed in seeds {
        for (arm, base) in &plan.arms {
            let mut cfg = base.clone();
            cfg.run.seed = seed;
            cfg.validate()?;
            let dir = out.join(format!("{arm}-s{seed}"));
            super::train_or_resume(&cfg, &dir, label(&format!("{arm} s{seed}")).as_deref())?;
            let run = Run::open(&dir)?;
            let ed = run.task().editor().ok_or_else(|| {
                GanError::Input(format!("{} is not an attribute run", dir.display()))
            })?;
            let modes: &[(&str, bool)] = if arm == "stargan" {
                &[("StarGAN", false)]
            } else {
                &[
                    ("ours (label-based)", false),
                    ("ours (reference-based)", true),
                ]
            };
            if arm != "stargan" && seed == seeds[0] {
                fig11(&data, ed, &out.join("fig11.png"))?;
            }
            for &(method, reference) in modes {
                rows.push(score(method, seed, &data, ed, &judge, fid, reference)?);
                if seed == seeds[0] {
                    grid_rows.push(comparison_rows(&data, ed, reference)?);
                }
            }
        }
    }
    if let Some((x, _)) = data.probes() {
        // Sources, then per attribute: StarGAN, ours label-based, ours reference-based.
        let k = plan.arms[1].1.bridgegan.data.attributes.len() as i64;
        let p = x.size()[0];
        let mut all = vec![x.to_device(Device::Cpu)];
        for j in 0..k {
            for g in &grid_rows {
                all.push(g.narrow(0, j * p, p));
            }
        }
        crate::data::write_png(
            &out.join("grid.png"),
            &crate::data::grid(&Tensor::cat(&all, 0), p, 2)?,
        )?;
    }
    let names = plan.arms[1].1.bridgegan.data.attributes.clone();
    write_atomic(
        &out.join("results.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "attributes": names, "classifier": judge_summary, "rows": rows,
        }))?
        .as_bytes(),
    )?;
    write_atomic(
        &out.join("results.md"),
        markdown(&names, &judge_summary, &rows).as_bytes(),
    )?;
    Ok((judge_summary, rows))
}

/// fig11.png: Fig. 11's layout for gender (Man on the left, Woman on the right; the
/// first two attributes where the config has no such names), 4 references a side.
fn fig11(data: &AttributeData, ed: &dyn AttributeEditor, path: &Path) -> Result<()> {
    let names = ed.attributes();
    let at = |n: &str, d: usize| names.iter().position(|a| a == n).unwrap_or(d);
    if names.len() < 2 {
        return Ok(());
    }
    let edit = |x: &Tensor, a: &Tensor, b: &Tensor, r: &Tensor| ed.edit(x, a, b, Some(r), 0.0);
    if let Some(g) = data.edge_reference_grid(at("Man", 0), at("Woman", 1), 4, &edit)? {
        crate::data::write_png(path, &g)?;
    }
    Ok(())
}

/// The probes with each attribute flipped by `ed` ([k·p, 3, s, s], CPU).
fn comparison_rows(
    data: &AttributeData,
    ed: &dyn AttributeEditor,
    reference: bool,
) -> Result<Tensor> {
    let (x, y) = data
        .probes()
        .ok_or_else(|| GanError::Input("no test split".into()))?;
    tch::manual_seed(step_seed(0, u64::MAX - 3));
    let mates = ed.mates();
    let x_r = x.roll([1], [0]);
    let mut rows = Vec::new();
    for j in 0..ed.attributes().len() {
        let y_t = crate::data::attributes::flip_attribute(&mates, &y, j);
        let (r, alpha) = if reference {
            (Some(&x_r), 0.0)
        } else {
            (None, 1.0)
        };
        rows.push(ed.edit(&x, &y, &y_t, r, alpha)?.to_device(Device::Cpu));
    }
    Ok(Tensor::cat(&rows, 0))
}

/// results.md: the judge's real-image accuracy, Table 1 and Table 2 (mean ± sd over seeds,
/// one column per attribute, rows StarGAN / ours label / ours reference) and diversity.
pub fn markdown(names: &[String], judge: &serde_json::Value, rows: &[Row]) -> String {
    let mut methods: Vec<&str> = Vec::new();
    for r in rows {
        if !methods.contains(&r.method.as_str()) {
            methods.push(&r.method);
        }
    }
    let stat = |v: &[f64]| {
        let n = v.len() as f64;
        let m = v.iter().sum::<f64>() / n;
        let sd = if v.len() > 1 {
            (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        (m, sd)
    };
    let header = format!(
        "| method | seeds | {} | mean |\n|---|---|{}---|\n",
        names.join(" | "),
        "---|".repeat(names.len())
    );
    let table = |get: &dyn Fn(&Row) -> &Vec<f64>, scale: f64, digits: usize| {
        let mut s = header.clone();
        for m in &methods {
            let rs: Vec<&Row> = rows
                .iter()
                .filter(|r| r.method == *m && !get(r).is_empty())
                .collect();
            if rs.is_empty() {
                continue;
            }
            let mut cells = Vec::new();
            for j in 0..=names.len() {
                let v: Vec<f64> = rs
                    .iter()
                    .map(|r| {
                        let x = get(r);
                        if j < names.len() {
                            x[j]
                        } else {
                            x.iter().sum::<f64>() / x.len() as f64
                        }
                    })
                    .map(|x| x * scale)
                    .collect();
                let (mu, sd) = stat(&v);
                cells.push(format!("{mu:.digits$} ± {sd:.digits$}"));
            }
            s += &format!("| {m} | {} | {} |\n", rs.len(), cells.join(" | "));
        }
        s
    };
    let mut s = String::from("Judge (attribute classifier) on real test images, accuracy %: ");
    s += &names
        .iter()
        .map(|n| {
            let v = judge
                .get(format!("test_acc_{n}"))
                .and_then(|v| v.as_f64())
                .unwrap_or(f64::NAN);
            format!("{n} {:.1}", 100.0 * v)
        })
        .collect::<Vec<_>>()
        .join(", ");
    s += "\n\nTable 1: accuracy (%) of each attribute flipped, read by the judge\n\n";
    s += &table(&|r| &r.accuracy, 100.0, 1);
    s += "\nTable 2: FID of each attribute flipped (edits of the test images vs the training images)\n\n";
    s += &table(&|r| &r.fid, 1.0, 1);
    s += "\nDiversity (mean pairwise Inception-feature L2 distance among 10 outputs per source)\n\n| method | seeds | diversity |\n|---|---|---|\n";
    for m in &methods {
        let v: Vec<f64> = rows
            .iter()
            .filter(|r| r.method == *m)
            .filter_map(|r| r.diversity)
            .collect();
        if !v.is_empty() {
            let (mu, sd) = stat(&v);
            s += &format!("| {m} | {} | {mu:.2} ± {sd:.2} |\n", v.len());
        }
    }
    s + "\ngrid.png: the sources in the first row; then per attribute, in the config's order, one row each for StarGAN, ours label-based and ours reference-based (reference: the next source), first seed.\nfig11.png (Fig. 11's layout): two sources on top, references in the edge columns (left: with Man; right: with Woman), the sources given that attribute in each reference's style in the middle, first seed.\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::bridgegan_tests::write_attribute_set;

    /// End to end on a tiny set in CelebA's layout with tiny networks: the judge, both arms
    /// and the scores (one accuracy per attribute in [0, 1] for each of the three methods;
    /// FIDs and diversity when the Inception is fetched, StarGAN's diversity exactly 0);
    /// results.md holds Tables 1–2 with the attribute columns; a rerun resumes every stage
    /// (same rows); unequal budgets are refused.
    #[test]
    fn pipeline_scores_and_resumes() {
        let _rng = crate::test_rng_lock();
        tch::manual_seed(4);
        let base = std::env::temp_dir().join(format!("ganlab-exp-ma-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let data = write_attribute_set(&base.join("data"), 12);
        let inception =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/inception/default_1.pt");
        let sets: Vec<String> = [
            format!("data.dir={:?}", data.dir),
            "data.images=\"img\"".into(),
            "data.attributes=[\"A\", \"B\", \"C\"]".into(),
            "data.exclusive=[[\"A\", \"B\"]]".into(),
            "data.image_size=32".into(),
            format!("data.inception={inception:?}"),
            "run.steps=2".into(),
            "run.batch_size=4".into(),
            "run.eval_samples=4".into(),
            "run.device=\"cpu\"".into(),
            "stargan.n_critic=1".into(),
            "bridgegan.n_critic=1".into(),
            "stargan.model.g_ch=4".into(),
            "stargan.model.res_blocks=1".into(),
            "stargan.model.d_ch=4".into(),
            "stargan.model.d_layers=3".into(),
            "bridgegan.model.g_ch=4".into(),
            "bridgegan.model.style_ch=4".into(),
            "bridgegan.model.d_ch=4".into(),
            "bridgegan.model.spade_hidden=4".into(),
            "bridgegan.model.noise_dim=3".into(),
            "classifier.run.steps=3".into(),
            "classifier.run.device=\"cpu\"".into(),
            "attribute_classifier.width=8".into(),
            "attribute_classifier.blocks=2".into(),
        ]
        .to_vec();
        let p = plan(&sets).unwrap();
        let out = base.join("exp");
        let (_, rows) = run(&p, &[0], &out, false).unwrap();
        let methods: Vec<&str> = rows.iter().map(|r| r.method.as_str()).collect();
        assert_eq!(
            methods,
            ["StarGAN", "ours (label-based)", "ours (reference-based)"]
        );
        for r in &rows {
            assert_eq!(r.accuracy.len(), 3);
            assert!(r.accuracy.iter().all(|a| (0.0..=1.0).contains(a)), "{r:?}");
            if inception.is_file() {
                assert_eq!(r.fid.len(), 3);
                assert!(r.fid.iter().all(|f| f.is_finite() && *f >= 0.0), "{r:?}");
                assert!(r.diversity.is_some_and(f64::is_finite));
            }
        }
        if inception.is_file() {
            assert_eq!(rows[0].diversity, Some(0.0), "StarGAN is deterministic");
            let cached = std::fs::read_dir(&out)
                .unwrap()
                .filter_map(|e| e.ok())
                .any(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with("real_train_stats-")
                });
            assert!(cached, "the training images' statistics are cached");
        }
        let md = std::fs::read_to_string(out.join("results.md")).unwrap();
        assert!(
            md.contains("| method | seeds | A | B | C | mean |") && md.contains("Table 2"),
            "{md}"
        );
        assert!(out.join("grid.png").is_file());
        // Fig. 11: 1 + 4 rows of 4 cells (32 px images, 2 px gaps), A on the left, B right.
        let f = crate::data::folder::load_image(&out.join("fig11.png")).unwrap();
        assert_eq!(f.size(), [3, 5 * 34 + 2, 4 * 34 + 2]);
        let (_, again) = run(&p, &[0], &out, false).unwrap();
        assert_eq!(again.len(), rows.len());
        assert_eq!(again[1].accuracy, rows[1].accuracy, "resumed, same scores");
        let e = plan(&[sets, vec!["stargan.n_critic=3".into()]].concat()).unwrap_err();
        assert!(e.to_string().contains("equal budgets"), "{e}");
        let _ = std::fs::remove_dir_all(&base);
    }
}
