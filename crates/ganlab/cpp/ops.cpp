// ATen operators that tch 0.26's generated API leaves out, called through the dispatcher so
// that autograd records them like any other op. Tensors cross as tch does it: a heap
// at::Tensor* owned by the Rust side (tch::Tensor::from_ptr / as_ptr). Errors come back as a
// malloc'ed message (freed by the caller with free) and a null result; nothing throws across
// the C boundary.
#include <ATen/core/Tensor.h>
#include <ATen/ops/leaky_relu.h>

#include <cstdlib>
#include <cstring>
#include <exception>

extern "C" at::Tensor *ganlab_leaky_relu(const at::Tensor *x, double slope, char **error) {
  try {
    return new at::Tensor(at::leaky_relu(*x, slope));
  } catch (const std::exception &e) {
    *error = strdup(e.what());
    return nullptr;
  }
}
