//! Diagnostic of a bridgegan run (docs/ATTRIBUTES.md, "E does not see its attributes"): how
//! much the output moves, in mean |Δpixel| on [−1, 1], when the target attributes change
//! (one flip at a time, label- and reference-based), against another noise R and another
//! source; and whether the model's own C reads the flipped attribute. 32 images, every 37th
//! of IMAGES_DIR. `cargo run --release --example bridgegan_probe RUN_DIR IMAGES_DIR`.
use std::path::Path;

use ganlab::data::attributes::flip_attribute;
use ganlab::data::folder::{image_files, load_image, resize_crop, to_channels};
use ganlab::run::Run;
use tch::{Kind, Tensor};

fn main() -> ganlab::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    let run = Run::open(Path::new(&a[1]))?;
    let ed = run.task().editor().expect("an attribute run");
    let s = ed.image_size();
    let files = image_files(Path::new(&a[2]))?;
    let xs: Vec<Tensor> = files
        .iter()
        .step_by(37)
        .take(32)
        .map(|p| Ok(to_channels(resize_crop(&load_image(p)?, s).unsqueeze(0), 3)))
        .collect::<ganlab::Result<_>>()?;
    let x = Tensor::cat(&xs, 0);
    let y_s = ed.classify(&x)?;
    let mates = ed.mates();
    let flip = |j: usize| flip_attribute(&mates, &y_s, j);
    let edit = |y_t: &Tensor, seed: i64| {
        tch::manual_seed(seed);
        ed.edit(&x, &y_s, y_t, None, 1.0)
    };
    let mad = |p: &Tensor, q: &Tensor| (p - q).abs().mean(Kind::Float).double_value(&[]);
    let same = edit(&y_s, 0)?;
    println!("|G(x, d=0) - x| = {:.4}", mad(&same, &x));
    let saturated = |t: &Tensor| t.abs().gt(0.99).to_kind(Kind::Float).mean(Kind::Float);
    println!(
        "share of pixels with |v| > 0.99: output {:.3}, sources {:.3}",
        saturated(&same).double_value(&[]),
        saturated(&x).double_value(&[])
    );
    println!(
        "|G(x, d=0; R0) - G(x, d=0; R1)| = {:.4}",
        mad(&same, &edit(&y_s, 1)?)
    );
    let shifted = Tensor::cat(&[x.narrow(0, 1, x.size()[0] - 1), x.narrow(0, 0, 1)], 0);
    println!("|x - x'| (another source) = {:.4}", mad(&x, &shifted));
    for (j, name) in ed.attributes().iter().enumerate() {
        let out = edit(&flip(j), 0)?;
        let c = ed.classify(&out)?;
        let want = flip(j).narrow(1, j as i64, 1);
        let hit = c
            .narrow(1, j as i64, 1)
            .eq_tensor(&want)
            .to_kind(Kind::Float)
            .mean(Kind::Float);
        // Reference-based with another source x' as reference: E(x, −d) + E(x', d) against
        // E(x, 0) + E(x', 0), i.e. how far E's attribute input moves the output.
        let r0 = ed.edit(&x, &y_s, &y_s, Some(&shifted), 0.0)?;
        let rj = ed.edit(&x, &y_s, &flip(j), Some(&shifted), 0.0)?;
        println!(
            "flip {name:12}: label-based |G(x, d_j) - G(x, 0)| = {:.4}, C reads target {:.3}; \
             reference-based |G(x, E(x,-d)+E(x',d)) - G(x, E(x,0)+E(x',0))| = {:.4}",
            mad(&out, &same),
            hit.double_value(&[]),
            mad(&rj, &r0)
        );
    }
    Ok(())
}
