//! Reusable layers that tch lacks: LeakyReLU with a slope, the timestep embedding of
//! D(y, t).

pub mod timestep;

pub use timestep::{sinusoidal_embedding, TimestepEmbedding, TimestepEmbeddingConfig};

use tch::Tensor;

/// LeakyReLU with negative slope `slope` ∈ [0, 1): max(x, slope·x).
pub fn leaky_relu(x: &Tensor, slope: f64) -> Tensor {
    x.maximum(&(x * slope))
}

#[cfg(test)]
mod tests {
    #[test]
    fn leaky_relu_values() {
        let x = tch::Tensor::from_slice(&[-2.0f32, 0.0, 3.0]);
        assert_eq!(
            Vec::<f32>::try_from(super::leaky_relu(&x, 0.2)).unwrap(),
            vec![-0.4, 0.0, 3.0]
        );
    }
}
