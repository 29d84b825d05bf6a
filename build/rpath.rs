//! Build script shared by the ganlab crates: embeds libtorch's directory as an rpath so
//! that binaries and tests run without LD_LIBRARY_PATH. torch-sys exports the directory
//! it linked against as DEP_TCH_LIBTORCH_LIB (its `links = "tch"` metadata).
//!
//! For the `ganlab` library it also compiles cpp/ops.cpp, a few ATen operators tch's API
//! leaves out (LeakyReLU with a slope other than 0.01), against the headers next to that
//! directory (a PyPI torch wheel: torch/lib and torch/include), and cpp/dist.cpp, the c10d
//! process groups of `ganlab::dist`, where gloo's headers are found.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    // ganlab::device loads libtorch_cuda.so from here on demand (see its module docs).
    println!("cargo:rustc-env=GANLAB_LIBTORCH_LIB={dir}");
    if std::env::var("CARGO_PKG_NAME").as_deref() != Ok("ganlab") {
        return;
    }
    println!("cargo:rerun-if-changed=cpp/ops.cpp");
    println!("cargo:rerun-if-changed=cpp/dist.cpp");
    println!("cargo:rerun-if-env-changed=GANLAB_GLOO_INCLUDE");
    println!("cargo::rustc-check-cfg=cfg(ganlab_c10d)");
    let include = std::path::Path::new(&dir)
        .parent()
        .expect("libtorch lib dir has a parent")
        .join("include");
    let build = || {
        let mut b = cc::Build::new();
        b.cpp(true)
            .pic(true)
            .warnings(false)
            .include(&include)
            .flag("-std=c++17")
            // torch 2.13 wheels use the C++11 ABI (tch 0.26 needs exactly that torch).
            .flag("-D_GLIBCXX_USE_CXX11_ABI=1");
        b
    };
    build().file("cpp/ops.cpp").compile("ganlab_ops");
    // c10d (data-parallel training): libtorch's ProcessGroupGloo, declared by the wheel's
    // headers, which include gloo's; scripts/setup-libtorch unpacks those from Debian's
    // libgloo-dev and exports GANLAB_GLOO_INCLUDE. Without them `ganlab::dist` says how to
    // get them instead of training on several processes.
    if let Some(gloo) = std::env::var_os("GANLAB_GLOO_INCLUDE")
        .map(std::path::PathBuf::from)
        .filter(|p| p.join("gloo/context.h").is_file())
    {
        build()
            .include(include.join("torch/csrc/api/include"))
            .include(&gloo)
            .define("USE_C10D_GLOO", None)
            .define("USE_DISTRIBUTED", None)
            .file("cpp/dist.cpp")
            .compile("ganlab_dist");
        println!("cargo:rustc-cfg=ganlab_c10d");
    }
}
