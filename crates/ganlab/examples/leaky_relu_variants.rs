//! Forward + backward time of LeakyReLU(0.2) formulations on a 512×128 batch, the reason
//! for `ganlab::nn::LeakyRelu`'s choice: aten::leaky_relu with slope 0.2 through the shim in
//! cpp/ops.cpp (tch binds only slope 0.01, timed here as `leaky001` for comparison).
//! Run: `cargo run --release -p ganlab --example leaky_relu_variants`.

use std::time::Instant;
use tch::{Kind, Tensor};
type Activation<'a> = Box<dyn Fn(&Tensor) -> Tensor + 'a>;

fn main() {
    ganlab::tune_allocator();
    let x = Tensor::randn([512, 128], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
    let w = Tensor::from_slice(&[0.2f32]);
    let act = ganlab::nn::LeakyRelu::new(0.2);
    let fs: Vec<(&str, Activation<'_>)> = vec![
        ("nn::LeakyRelu", Box::new(|x: &Tensor| act.forward(x))),
        ("prelu", Box::new(|x: &Tensor| x.prelu(&w))),
        ("leaky001", Box::new(|x: &Tensor| x.leaky_relu())),
        (
            "mask_mul",
            Box::new(|x: &Tensor| {
                let f = tch::no_grad(|| x.gt(0.0).to_kind(Kind::Float) * 0.8 + 0.2);
                x * f
            }),
        ),
        (
            "mask_bool",
            Box::new(|x: &Tensor| {
                let f = tch::no_grad(|| x.gt(0.0) * 0.8 + 0.2);
                x * f
            }),
        ),
        (
            "mask_where",
            Box::new(|x: &Tensor| {
                let f = tch::no_grad(|| Tensor::where_scalar(&x.gt(0.0), 1.0, 0.2));
                x * f
            }),
        ),
        (
            "lin_leaky",
            Box::new(|x: &Tensor| x.leaky_relu() * (0.8 / 0.99) + x * (1.0 - 0.8 / 0.99)),
        ),
        ("relu_mix", Box::new(|x: &Tensor| x.relu() * 0.8 + x * 0.2)),
    ];
    for (n, f) in &fs {
        for _ in 0..200 {
            f(&x).sum(Kind::Float).backward();
        }
        let t = Instant::now();
        for _ in 0..3000 {
            f(&x).sum(Kind::Float).backward();
        }
        println!(
            "{n:<10} {:8.1} us",
            t.elapsed().as_secs_f64() / 3000.0 * 1e6
        );
    }
}
