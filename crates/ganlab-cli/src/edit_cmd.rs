//! `ganlab translate` on a multi-attribute run: label-based edits (`--set`), reference-based
//! edits (`--reference`) and mixes of the two (`--alpha`), with grids in the paper's layouts
//! (multi-attribute-translation-supplement.txt Figs. 6, 9, 11).
//!
//! The source attributes of a user's image are unknown, so the model's own classifier reads
//! them (written to labels.json with the outputs). Each `--set A=1,B=0` is one target: the
//! source's labels with those attributes set by the conflict rule (setting a member of an
//! exclusive group to 1 clears the others; two members at 1 is an error). With
//! `--reference`, every input is given each reference's style for the target attributes;
//! without `--set`, the target is the reference's own labels (all attributes).

use std::path::{Path, PathBuf};

use ganlab::data::attributes::edit_labels;
use ganlab::data::folder::{image_files, load_image, resize_crop, to_channels};
use ganlab::error::GanError;
use ganlab::tasks::AttributeEditor;
use tch::{Device, Kind, Tensor};

/// What `translate` passes on for an attribute run.
pub struct EditArgs<'a> {
    pub run: &'a Path,
    pub step: u64,
    pub input: &'a Path,
    pub out: &'a Path,
    pub set: &'a [String],
    pub reference: Option<&'a Path>,
    pub alpha: &'a [f64],
    pub samples: i64,
    pub seed: u64,
}

/// Image files of `p` (a file or a folder), named for errors as `flag`.
pub fn inputs_of(p: &Path, flag: &str) -> ganlab::Result<Vec<PathBuf>> {
    if p.is_dir() {
        image_files(p)
    } else if p.is_file() {
        Ok(vec![p.to_path_buf()])
    } else {
        Err(GanError::Input(format!(
            "{flag} {}: no such file or folder",
            p.display()
        )))
    }
}

/// The images of `files` at side `s`, RGB, [n, 3, s, s].
fn load_all(files: &[PathBuf], s: i64) -> ganlab::Result<Tensor> {
    let xs = files
        .iter()
        .map(|p| Ok(to_channels(resize_crop(&load_image(p)?, s).unsqueeze(0), 3)))
        .collect::<ganlab::Result<Vec<_>>>()?;
    Ok(Tensor::cat(&xs, 0))
}

/// `--set A=1,B=0` → (attribute index, value) pairs.
fn parse_set(spec: &str, names: &[String]) -> ganlab::Result<Vec<(usize, f64)>> {
    spec.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').ok_or_else(|| {
                GanError::Input(format!("--set {spec:?}: expected ATTR=0|1[,ATTR=0|1…]"))
            })?;
            let i = names.iter().position(|n| n == k.trim()).ok_or_else(|| {
                GanError::Input(format!(
                    "--set: no attribute `{}`; this run edits {}",
                    k.trim(),
                    names.join(", ")
                ))
            })?;
            let v = match v.trim() {
                "1" | "true" => 1.0,
                "0" | "false" | "-1" => 0.0,
                other => {
                    return Err(GanError::Input(format!(
                        "--set {k}={other}: the value must be 1 or 0"
                    )))
                }
            };
            Ok((i, v))
        })
        .collect()
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

/// Runs the edit (see module docs).
pub fn edit(ed: &dyn AttributeEditor, a: EditArgs) -> anyhow::Result<()> {
    let names = ed.attributes().to_vec();
    let mates = ed.mates();
    let s = ed.image_size();
    let targets = a
        .set
        .iter()
        .map(|t| parse_set(t, &names))
        .collect::<ganlab::Result<Vec<_>>>()?;
    let alphas: Vec<f64> = if a.alpha.is_empty() {
        vec![if a.reference.is_some() { 0.0 } else { 1.0 }]
    } else {
        a.alpha.to_vec()
    };
    if alphas.len() > 1 && a.reference.is_none() {
        return Err(GanError::Input(
            "several --alpha values walk from reference- to label-based style: give --reference"
                .into(),
        )
        .into());
    }
    if let Some(bad) = alphas.iter().find(|v| !(0.0..=1.0).contains(*v)) {
        return Err(GanError::Input(format!("--alpha must be in [0, 1], got {bad}")).into());
    }
    if a.reference.is_none() && targets.is_empty() {
        return Err(GanError::Input(format!(
            "an attribute run needs --set ATTR=0|1,… (attributes: {}) or --reference IMG|DIR",
            names.join(", ")
        ))
        .into());
    }
    if a.reference.is_none() && alphas.iter().any(|&v| v < 1.0) {
        return Err(GanError::Input(
            "--alpha below 1 mixes in a reference style: give --reference".into(),
        )
        .into());
    }
    if a.reference.is_some() && !ed.has_reference() {
        return Err(GanError::Input("this run's model takes no reference images".into()).into());
    }
    if !(1..=64).contains(&a.samples) {
        return Err(
            GanError::Input(format!("--samples must be in [1, 64], got {}", a.samples)).into(),
        );
    }
    let files = inputs_of(a.input, "--input")?;
    let refs = match a.reference {
        Some(r) => inputs_of(r, "--reference")?,
        None => Vec::new(),
    };
    // Read and check everything before writing anything.
    let x = load_all(&files, s)?;
    let x_ref = if refs.is_empty() {
        None
    } else {
        Some(load_all(&refs, s)?)
    };
    let y_s = ed.classify(&x)?.to_device(Device::Cpu);
    let y_ref = match &x_ref {
        Some(r) => Some(ed.classify(r)?.to_device(Device::Cpu)),
        None => None,
    };
    for t in &targets {
        let _ = edit_labels(&names, &mates, &y_s, t)?;
    }
    ganlab::io::check_output_dir(a.out)?;
    ganlab::io::create_output_dir(a.out)?;
    tch::manual_seed(ganlab::train::step_seed(a.seed, u64::MAX - 5));
    let n = x.size()[0];
    // One grid row per target (label-based) or per reference (reference-based), sources on
    // top; a reference grid has the references in its first column.
    let mut rows: Vec<Tensor> = Vec::new();
    let white = Tensor::ones([1, 3, s, s], (Kind::Float, Device::Cpu));
    let mut written = 0;
    let mut write = |name: String, img: &Tensor| -> ganlab::Result<()> {
        written += 1;
        ganlab::data::write_png(&a.out.join(name), img)
    };
    match (&x_ref, &y_ref) {
        (None, _) => {
            rows.push(x.shallow_clone());
            for (ti, t) in targets.iter().enumerate() {
                let y_t = edit_labels(&names, &mates, &y_s, t)?;
                for si in 0..a.samples {
                    let y = ed.edit(&x, &y_s, &y_t, None, 1.0)?.to_device(Device::Cpu);
                    for (i, f) in files.iter().enumerate() {
                        let sfx = if a.samples > 1 {
                            format!("-s{si}")
                        } else {
                            String::new()
                        };
                        write(format!("{}-t{ti}{sfx}.png", stem(f)), &y.get(i as i64))?;
                    }
                    rows.push(y);
                }
            }
        }
        (Some(xr), Some(yr)) => {
            rows.push(Tensor::cat(&[&white, &x], 0));
            for (ri, rf) in refs.iter().enumerate() {
                let r1 = xr.narrow(0, ri as i64, 1);
                let y_t = match targets.first() {
                    // The chosen attributes, in the reference's style.
                    Some(t) => edit_labels(&names, &mates, &y_s, t)?,
                    None => yr.narrow(0, ri as i64, 1).expand([n, -1], false).copy(),
                };
                let rr = r1.expand([n, -1, -1, -1], false).copy();
                // One row per α: with several, a walk between the two style codes.
                for &al in &alphas {
                    let y = ed
                        .edit(&x, &y_s, &y_t, Some(&rr), al)?
                        .to_device(Device::Cpu);
                    let sfx = if alphas.len() > 1 {
                        format!("-a{al}")
                    } else {
                        String::new()
                    };
                    for (i, f) in files.iter().enumerate() {
                        write(
                            format!("{}-ref-{}{sfx}.png", stem(f), stem(rf)),
                            &y.get(i as i64),
                        )?;
                    }
                    rows.push(Tensor::cat(&[&r1, &y], 0));
                }
            }
        }
        _ => unreachable!("labels are read for every reference"),
    }
    let cols = rows[0].size()[0];
    let grid = ganlab::data::grid(&Tensor::cat(&rows, 0), cols, 2)?;
    let grid_path = a.out.join("grid.png");
    if !grid_path.exists() {
        ganlab::data::write_png(&grid_path, &grid)?;
    }
    let labels = |y: &Tensor, fs: &[PathBuf]| -> serde_json::Value {
        fs.iter()
            .enumerate()
            .map(|(i, f)| {
                let row: Vec<f32> = Vec::try_from(y.get(i as i64)).unwrap_or_default();
                let m: serde_json::Map<String, serde_json::Value> = names
                    .iter()
                    .zip(row)
                    .map(|(k, v)| (k.clone(), (v as i64).into()))
                    .collect();
                (f.display().to_string(), serde_json::Value::Object(m))
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let mut info = serde_json::json!({
        "run": a.run.display().to_string(),
        "step": a.step,
        "alpha": alphas,
        "targets": a.set,
        "source_labels": labels(&y_s, &files),
    });
    if let Some(yr) = &y_ref {
        info["reference_labels"] = labels(yr, &refs);
    }
    ganlab::io::write_atomic(
        &a.out.join("labels.json"),
        serde_json::to_string_pretty(&info)?.as_bytes(),
    )?;
    println!(
        "edited {} image(s) into {} file(s) in {} ({}); grid.png: sources in the first row, one row per {}; labels.json: the attributes the model read",
        n,
        written,
        a.out.display(),
        if x_ref.is_some() { format!("reference-based, alpha {alphas:?}") } else { "label-based".into() },
        if x_ref.is_some() { "reference" } else { "target" }
    );
    Ok(())
}
