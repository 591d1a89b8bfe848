//! What a module costs to instantiate and to keep compiled, read from its
//! section headers at compile time.
//!
//! Instantiation copies data segments, fills tables and runs the start
//! section; none of that is fuel-sliced, so [`ModuleShape::instantiates_inline`]
//! allows it on an async runtime thread only when all of it is small. The
//! cache weighs a compiled module by [`ModuleShape::compiled_bytes`], an
//! upper estimate of the memory wasmi and our descriptors hold for it.

/// Counts taken from a module's sections (validated by wasmi before).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleShape {
    pub has_start: bool,
    /// Bytes of the code section (function bodies).
    pub code_bytes: u64,
    /// Bytes of the data section (segment contents plus headers).
    pub data_bytes: u64,
    /// Bytes of the element section.
    pub element_bytes: u64,
    /// Sum of the tables' initial sizes (`u64::MAX` if unreadable).
    pub table_elements: u64,
    /// Functions defined by the module.
    pub functions: u64,
    pub imports: u64,
    pub exports: u64,
    /// Total bytes of export names.
    pub export_name_bytes: u64,
}

/// At most this much of each kind is instantiated on the async runtime:
/// copying or translating it takes well under a millisecond. Code counts
/// because the inline slice may call (and so lazily translate) all of it:
/// wasmi translates ≈ 32 ns per code byte here, so 8 KiB ≈ 0.26 ms.
pub const INLINE_MAX_CODE_BYTES: u64 = 8 * 1024;
pub const INLINE_MAX_DATA_BYTES: u64 = 256 * 1024;
pub const INLINE_MAX_ELEMENT_BYTES: u64 = 64 * 1024;
pub const INLINE_MAX_TABLE_ELEMENTS: u64 = 16 * 1024;

/// Memory per item of a compiled module, from the RSS growth of compiling
/// modules of 100k functions (≈ 67 bytes each, untranslated) and of 100k
/// exported functions (≈ 186 bytes each in all), with a margin.
pub const BYTES_PER_FUNCTION: u64 = 96;
pub const BYTES_PER_EXPORT: u64 = 128;
pub const BYTES_PER_IMPORT: u64 = 256;
/// Lazily translated code can grow to a few times its wasm size.
pub const BYTES_PER_CODE_BYTE: u64 = 4;
/// Fixed cost of any compiled module (engine entries, our descriptors).
pub const BYTES_PER_MODULE: u64 = 16 * 1024;

impl ModuleShape {
    /// Reads the shape of a valid module.
    pub fn of(bytes: &[u8]) -> Self {
        let mut shape = Self::default();
        let mut reader = Reader { bytes, at: 8 };
        while reader.at < bytes.len() {
            let (Some(id), Some(size)) = (reader.byte(), reader.leb()) else {
                break;
            };
            let start = reader.at;
            let end = start.saturating_add(size as usize).min(bytes.len());
            let mut section = Reader {
                bytes: &bytes[..end],
                at: start,
            };
            let size = (end - start) as u64;
            match id {
                2 => shape.imports = section.leb().unwrap_or(0),
                3 => shape.functions = section.leb().unwrap_or(0),
                4 => shape.table_elements = section.table_minimums().unwrap_or(u64::MAX),
                7 => {
                    shape.exports = section.leb().unwrap_or(0);
                    shape.export_name_bytes = size;
                }
                8 => shape.has_start = true,
                9 => shape.element_bytes = size,
                10 => shape.code_bytes = size,
                11 => shape.data_bytes = size,
                _ => {}
            }
            reader.at = end;
        }
        shape
    }

    /// True when instantiating runs no guest code and copies little.
    pub fn instantiates_inline(&self) -> bool {
        !self.has_start
            && self.code_bytes <= INLINE_MAX_CODE_BYTES
            && self.data_bytes <= INLINE_MAX_DATA_BYTES
            && self.element_bytes <= INLINE_MAX_ELEMENT_BYTES
            && self.table_elements <= INLINE_MAX_TABLE_ELEMENTS
    }

    /// An upper estimate of the memory the compiled module holds, never
    /// below `module_bytes` (which covers the data segments wasmi keeps).
    pub fn compiled_bytes(&self, module_bytes: u64) -> u64 {
        BYTES_PER_MODULE
            .saturating_add(module_bytes)
            .saturating_add(self.functions.saturating_mul(BYTES_PER_FUNCTION))
            .saturating_add(self.exports.saturating_mul(BYTES_PER_EXPORT))
            .saturating_add(self.export_name_bytes.saturating_mul(2))
            .saturating_add(self.imports.saturating_mul(BYTES_PER_IMPORT))
            .saturating_add(self.code_bytes.saturating_mul(BYTES_PER_CODE_BYTE))
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn leb(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// Sum of the initial sizes in a table section; `None` for encodings
    /// this reader does not know (then the module is not instantiated inline).
    fn table_minimums(&mut self) -> Option<u64> {
        let count = self.leb()?;
        let mut total = 0u64;
        for _ in 0..count {
            let ref_type = self.byte()?;
            if ref_type != 0x70 && ref_type != 0x6f {
                return None;
            }
            let flags = self.byte()?;
            let minimum = self.leb()?;
            if flags & 0x01 != 0 {
                self.leb()?;
            }
            if flags & !0x05 != 0 {
                return None;
            }
            total = total.saturating_add(minimum);
        }
        Some(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_start_tables_and_counts() {
        let bytes = wat::parse_str(
            r#"(module
                (import "wasi_snapshot_preview1" "sched_yield" (func (result i32)))
                (table 100 funcref) (table 20 200 funcref)
                (memory 1) (data (i32.const 0) "hello")
                (func $s) (start $s)
                (func (export "_start")) (func (export "b")))"#,
        )
        .unwrap();
        let shape = ModuleShape::of(&bytes);
        assert!(shape.has_start);
        assert_eq!(shape.table_elements, 120);
        assert_eq!((shape.imports, shape.functions, shape.exports), (1, 3, 2));
        assert!(shape.data_bytes >= 5);
        assert!(!shape.instantiates_inline());
    }

    #[test]
    fn small_modules_without_start_instantiate_inline() {
        let bytes = wat::parse_str(r#"(module (memory 1) (func (export "_start")))"#).unwrap();
        assert!(ModuleShape::of(&bytes).instantiates_inline());
    }
}
