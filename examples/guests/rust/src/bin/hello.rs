//! rust_hello.wasm: prints `Hello from Rust, <name>!` where <name> is
//! argv[1] (default `WasmWiz`). The smallest Rust guest: std's stdout over
//! WASI fd_write. Exit 0.

fn main() {
    let name = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "WasmWiz".to_string());
    println!("Hello from Rust, {name}!");
}
