//! Collected files on their way out: each file becomes pieces of at most
//! [`PIECE_BYTES`] (slices of its contents, not copies), so no event grows
//! past what a client's default message limit (4 MiB) accepts.

use bytes::Bytes;

use crate::engine::vfs::CollectedFile;

/// The largest piece of a collected file in one event.
pub const PIECE_BYTES: usize = 1 << 20;

/// One piece of a collected file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePiece {
    pub path: String,
    pub data: Bytes,
}

/// The files' pieces in order: a file's pieces follow each other, and an
/// empty file is one empty piece.
pub fn pieces(files: Vec<CollectedFile>) -> impl Iterator<Item = FilePiece> {
    files.into_iter().flat_map(|file| {
        let len = file.contents.len();
        let count = len.div_ceil(PIECE_BYTES).max(1);
        (0..count).map(move |i| FilePiece {
            path: file.path.clone(),
            data: file
                .contents
                .slice(i * PIECE_BYTES..((i + 1) * PIECE_BYTES).min(len)),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, len: usize) -> CollectedFile {
        CollectedFile {
            path: path.into(),
            contents: Bytes::from(vec![7u8; len]),
        }
    }

    #[test]
    fn an_empty_file_is_one_empty_piece() {
        let all: Vec<_> = pieces(vec![file("e", 0)]).collect();
        assert_eq!(
            all,
            [FilePiece {
                path: "e".into(),
                data: Bytes::new()
            }]
        );
    }

    #[test]
    fn a_large_file_comes_in_pieces_of_at_most_one_mib_in_order() {
        let all: Vec<_> =
            pieces(vec![file("big", 2 * PIECE_BYTES + 5), file("small", 3)]).collect();
        let sizes: Vec<(&str, usize)> = all
            .iter()
            .map(|p| (p.path.as_str(), p.data.len()))
            .collect();
        assert_eq!(
            sizes,
            [
                ("big", PIECE_BYTES),
                ("big", PIECE_BYTES),
                ("big", 5),
                ("small", 3)
            ]
        );
    }
}
