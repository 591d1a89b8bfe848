//! The module argument of `run` and `batch`: a `.wasm` file, WAT text
//! (compiled here, so a user need not install a toolchain), or the sha256 of
//! a stored module; and the tier's size limit checked before any byte moves.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use wasmwiz::{
    util::{format_bytes, is_sha256},
    Client, Module,
};

use crate::{exit, failure, Cli, CliResult, Failure};

/// The four bytes every binary WebAssembly module starts with.
const WASM_MAGIC: &[u8; 4] = b"\0asm";

/// Modules below this size skip the tier check: the SDK sends them inline
/// in one message, so the server's refusal costs no more than a `WhoAmI`.
/// Larger ones go through a chunked upload worth saving.
pub const SIZE_CHECK_ABOVE: u64 = 1 << 20;

/// A resolved module argument.
pub struct ModuleArg {
    pub module: Module,
    /// The file, when the argument was one.
    pub path: Option<PathBuf>,
    /// What to call it in messages: the path, or the sha256.
    pub label: String,
    /// Size of the binary module to send (None for a stored sha256).
    pub size: Option<u64>,
}

/// Reads `text` as a file (binary or WAT), else as a stored sha256.
/// `verbose` says on stderr when WAT was compiled.
pub fn load(text: &str, verbose: bool) -> CliResult<ModuleArg> {
    let path = Path::new(text);
    if path.is_file() {
        let bytes =
            std::fs::read(path).map_err(|e| Failure::usage(format!("cannot read {text}: {e}")))?;
        let wasm = to_binary(path, bytes)?;
        if verbose && !wasm.was_binary {
            eprintln!(
                "wasmwiz: {text} is WAT text; compiled it here to a {} module",
                format_bytes(wasm.bytes.len() as u64)
            );
        }
        return Ok(ModuleArg {
            size: Some(wasm.bytes.len() as u64),
            module: Module::bytes(wasm.bytes),
            path: Some(path.to_path_buf()),
            label: text.to_string(),
        });
    }
    if is_sha256(text) {
        return Ok(ModuleArg {
            module: Module::sha256(text),
            path: None,
            label: text.to_string(),
            size: None,
        });
    }
    Err(Failure::usage(format!(
        "{text}: no such file (and not a 64-hex-digit sha256 of a stored module)"
    )))
}

struct Binary {
    bytes: Bytes,
    was_binary: bool,
}

/// Binary modules pass through; WAT text (recognised by its content, any
/// extension) is compiled with the `wat` crate; anything else is refused
/// here rather than uploaded.
fn to_binary(path: &Path, bytes: Vec<u8>) -> CliResult<Binary> {
    if bytes.starts_with(WASM_MAGIC) {
        return Ok(Binary {
            bytes: bytes.into(),
            was_binary: true,
        });
    }
    let named_wat = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("wat") || e.eq_ignore_ascii_case("wast"));
    if !named_wat && !looks_like_wat(&bytes) {
        return Err(Failure::usage(format!(
            "{} is not a WebAssembly module: it does not start with the \\0asm magic \
             of a binary module and is not WAT text",
            path.display()
        )));
    }
    match wat::parse_bytes(&bytes) {
        Ok(binary) => Ok(Binary {
            bytes: binary.into_owned().into(),
            was_binary: false,
        }),
        Err(mut e) => {
            e.set_path(path);
            Err(Failure::usage(format!(
                "{} is WAT text that does not compile:\n{e}",
                path.display()
            )))
        }
    }
}

/// True when the text starts (after blanks and `;;`/`(; ;)` comments) with
/// `(module` or another s-expression, as WAT does.
fn looks_like_wat(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    let mut rest = text.trim_start_matches('\u{feff}');
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix(";;") {
            rest = after.split_once('\n').map_or("", |(_, r)| r);
        } else if let Some(after) = rest.strip_prefix("(;") {
            match after.split_once(";)") {
                Some((_, r)) => rest = r,
                None => return false,
            }
        } else {
            return rest.starts_with('(');
        }
    }
}

/// Refuses a module larger than the caller's tier allows, before uploading
/// it. One `WhoAmI`, and only for modules above [`SIZE_CHECK_ABOVE`].
pub async fn check_size(cli: &Cli, client: &Client, module: &ModuleArg) -> CliResult<()> {
    let Some(size) = module.size.filter(|s| *s > SIZE_CHECK_ABOVE) else {
        return Ok(());
    };
    let me = client.whoami().await.map_err(|e| failure(cli, &e))?;
    let Some(limit) = me.limits.map(|l| l.max_module_bytes).filter(|l| *l > 0) else {
        return Ok(());
    };
    if size <= limit {
        return Ok(());
    }
    Err(Failure {
        code: exit::USAGE,
        message: format!(
            "{} is {}; the {} tier's limit is {} (nothing was uploaded)",
            module.label,
            format_bytes(size),
            me.tier,
            format_bytes(limit).replace(".0 ", " ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wat_is_recognised_by_content() {
        assert!(looks_like_wat(b"(module)"));
        assert!(looks_like_wat(b";; a comment\n  (module (func))"));
        assert!(looks_like_wat(b"(; block ;) (module)"));
        assert!(!looks_like_wat(b"#include <stdio.h>\n"));
        assert!(!looks_like_wat(b"\xff\xfe(module)"));
        assert!(!looks_like_wat(b";; only a comment"));
    }
}
