//! rust_panic.wasm: writes `about to panic` to stdout, then panics with
//! `index out of bounds` from a real out-of-range slice index. With
//! panic = "abort", Rust prints the panic message to stderr and aborts,
//! which on wasm32-wasip1 is the `unreachable` instruction: the run ends
//! as OUTCOME_TRAP with trap_kind `unreachable`, and stderr holds the
//! message.

fn main() {
    println!("about to panic");
    let values = [1u8, 2, 3];
    let index = std::env::args().count() + 5;
    println!("{}", values[index]);
}
