#!/usr/bin/env bash
# examples/guests/build.sh — rebuild every WasmWiz example guest.
#
# Usage: examples/guests/build.sh [NAME ...]
#   With no NAME, builds every NAME.c and NAME.wat in this folder into NAME.wasm
#   beside it, and every Rust program rust/src/bin/NAME.rs into rust_NAME.wasm;
#   with NAMEs (e.g. `hello loop rust_wordfreq`), builds only those.
#   Run from anywhere; it works in its own folder.
#
# Needs (Debian/Ubuntu packages; this script installs nothing):
#   C guests:   clang, lld (wasm-ld), wasi-libc, libclang-rt-dev-wasm32
#               apt-get install -y clang lld wasi-libc libclang-rt-dev-wasm32
#   WAT guests and the import check: wabt (wat2wasm, wasm-objdump)
#               apt-get install -y wabt
#   Rust guests: cargo with the wasm32-wasip1 target
#               rustup target add wasm32-wasip1
#
# Environment: CLANG (default `clang`), WAT2WASM (default `wat2wasm`),
#              WASM_OBJDUMP (default `wasm-objdump`), CARGO (default `cargo`).
#
# After building, every module is checked to import only from
# wasi_snapshot_preview1 (the only import module WasmWiz accepts).
set -euo pipefail

cd "$(dirname "$0")"

CLANG="${CLANG:-clang}"
WAT2WASM="${WAT2WASM:-wat2wasm}"
WASM_OBJDUMP="${WASM_OBJDUMP:-wasm-objdump}"
CARGO="${CARGO:-cargo}"
CFLAGS=(--target=wasm32-wasi -O2 -Wall -Wextra -Werror -Wl,--strip-all)

die() {
    printf 'build.sh: error: %s\n' "$*" >&2
    exit 1
}

# --- which guests -----------------------------------------------------------
c_guests=()
wat_guests=()
rust_guests=()
if [ "$#" -eq 0 ]; then
    for f in *.c; do [ -e "$f" ] && c_guests+=("${f%.c}"); done
    for f in *.wat; do [ -e "$f" ] && wat_guests+=("${f%.wat}"); done
    for f in rust/src/bin/*.rs; do [ -e "$f" ] && rust_guests+=("$(basename "${f%.rs}")"); done
else
    for name in "$@"; do
        name="${name%.wasm}"; name="${name%.c}"; name="${name%.wat}"
        if [[ "$name" == rust_* ]] && [ -e "rust/src/bin/${name#rust_}.rs" ]; then
            rust_guests+=("${name#rust_}")
        elif [ -e "$name.c" ]; then
            c_guests+=("$name")
        elif [ -e "$name.wat" ]; then
            wat_guests+=("$name")
        else
            die "no guest named '$name' (no $name.c, $name.wat or rust/src/bin/${name#rust_}.rs in examples/guests/)"
        fi
    done
fi

# --- prerequisites (checked before building anything) ------------------------
C_HINT="install them with: apt-get install -y clang lld wasi-libc libclang-rt-dev-wasm32"
WABT_HINT="install it with: apt-get install -y wabt"

if [ "${#c_guests[@]}" -gt 0 ]; then
    command -v "$CLANG" >/dev/null 2>&1 ||
        die "'$CLANG' not found. The C guests need clang, lld, wasi-libc and libclang-rt-dev-wasm32; $C_HINT"
    probe_dir="$(mktemp -d)"
    trap 'rm -rf "$probe_dir"' EXIT
    printf '#include <stdio.h>\nint main(void){puts("ok");return 0;}\n' >"$probe_dir/probe.c"
    if ! "$CLANG" "${CFLAGS[@]}" -o "$probe_dir/probe.wasm" "$probe_dir/probe.c" 2>"$probe_dir/err"; then
        cat "$probe_dir/err" >&2
        die "'$CLANG' cannot build for wasm32-wasi (missing wasi-libc sysroot, wasm-ld from lld, or the wasm32 compiler-rt builtins); $C_HINT"
    fi
fi
command -v "$WAT2WASM" >/dev/null 2>&1 || {
    [ "${#wat_guests[@]}" -eq 0 ] || die "'$WAT2WASM' not found (needed for ${wat_guests[*]/%/.wat}); $WABT_HINT"
}
if [ "${#rust_guests[@]}" -gt 0 ]; then
    command -v "$CARGO" >/dev/null 2>&1 ||
        die "'$CARGO' not found (needed for the Rust guests); install Rust with rustup, then: rustup target add wasm32-wasip1"
    if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx wasm32-wasip1; then
        die "the Rust target wasm32-wasip1 is not installed; install it with: rustup target add wasm32-wasip1"
    fi
fi
have_objdump=1
if ! command -v "$WASM_OBJDUMP" >/dev/null 2>&1; then
    have_objdump=0
    printf "build.sh: warning: '%s' not found, so the import check is skipped; %s\n" \
        "$WASM_OBJDUMP" "$WABT_HINT" >&2
fi

# --- build --------------------------------------------------------------------
check_imports() {
    local wasm="$1" bad
    [ "$have_objdump" -eq 1 ] || return 0
    # Import lines look like: " - func[0] sig=1 <wasi_snapshot_preview1.fd_write> <- wasi_snapshot_preview1.fd_write"
    bad="$("$WASM_OBJDUMP" -j Import -x "$wasm" 2>/dev/null |
        sed -n 's/.* <- \([^.]*\)\..*/\1/p' | grep -v '^wasi_snapshot_preview1$' || true)"
    [ -z "$bad" ] || die "$wasm imports from module(s) other than wasi_snapshot_preview1: $(echo "$bad" | sort -u | tr '\n' ' ')"
}

for name in "${c_guests[@]}"; do
    "$CLANG" "${CFLAGS[@]}" -o "$name.wasm" "$name.c"
    chmod 644 "$name.wasm"
    check_imports "$name.wasm"
    printf '%-20s %8d bytes\n' "$name.wasm" "$(wc -c <"$name.wasm")"
done
for name in "${wat_guests[@]}"; do
    "$WAT2WASM" -o "$name.wasm" "$name.wat"
    chmod 644 "$name.wasm"
    check_imports "$name.wasm"
    printf '%-20s %8d bytes\n' "$name.wasm" "$(wc -c <"$name.wasm")"
done
if [ "${#rust_guests[@]}" -gt 0 ]; then
    bins=()
    for name in "${rust_guests[@]}"; do bins+=(--bin "$name"); done
    # Its own target dir, whatever CARGO_TARGET_DIR says, so the path is known.
    "$CARGO" build --quiet --release --target wasm32-wasip1 \
        --manifest-path rust/Cargo.toml --target-dir rust/target "${bins[@]}"
    for name in "${rust_guests[@]}"; do
        cp "rust/target/wasm32-wasip1/release/$name.wasm" "rust_$name.wasm"
        chmod 644 "rust_$name.wasm"
        check_imports "rust_$name.wasm"
        printf '%-20s %8d bytes\n' "rust_$name.wasm" "$(wc -c <"rust_$name.wasm")"
    done
fi
