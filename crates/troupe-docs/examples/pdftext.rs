//! Reads the files named on the command line as Troupe would, and prints one line per file: its
//! format and encoding and how much text it gave, or why it was refused. For checking a document
//! folder, and for measuring the loader on damaged files.
#![allow(clippy::print_stdout)]

use std::path::Path;

fn main() {
    let options = troupe_docs::LoadOptions::default();
    for arg in std::env::args().skip(1) {
        match troupe_docs::load_file(Path::new(&arg), &options) {
            Ok(file) => println!(
                "ok\t{arg}\t{:?}\t{}\t{} chars",
                file.format,
                file.encoding.unwrap_or("-"),
                file.text.chars().count()
            ),
            Err(problem) => println!("refused\t{arg}\t{}", problem.reason),
        }
    }
}
