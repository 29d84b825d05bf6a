//! Build script shared by the ganlab crates: embeds libtorch's directory as an rpath so
//! that binaries and tests run without LD_LIBRARY_PATH. torch-sys exports the directory
//! it linked against as DEP_TCH_LIBTORCH_LIB (its `links = "tch"` metadata).
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
