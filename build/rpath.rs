//! Build script shared by the ganlab crates: embeds libtorch's directory as an rpath so
//! that binaries and tests run without LD_LIBRARY_PATH. torch-sys exports the directory
//! it linked against as DEP_TCH_LIBTORCH_LIB (its `links = "tch"` metadata).
//!
//! For the `ganlab` library it also compiles cpp/ops.cpp, a few ATen operators tch's API
//! leaves out (LeakyReLU with a slope other than 0.01), against the headers next to that
//! directory (a PyPI torch wheel: torch/lib and torch/include).
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    if std::env::var("CARGO_PKG_NAME").as_deref() != Ok("ganlab") {
        return;
    }
    println!("cargo:rerun-if-changed=cpp/ops.cpp");
    let include = std::path::Path::new(&dir)
        .parent()
        .expect("libtorch lib dir has a parent")
        .join("include");
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(&include)
        .flag("-std=c++17")
        // torch 2.13 wheels use the C++11 ABI (tch 0.26 needs exactly that torch).
        .flag("-D_GLIBCXX_USE_CXX11_ABI=1")
        .file("cpp/ops.cpp")
        .compile("ganlab_ops");
}
