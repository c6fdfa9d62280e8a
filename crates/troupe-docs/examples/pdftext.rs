//! Reads the files named on the command line as Troupe would, and prints one line per file: its
//! format and encoding and how much text it gave, or why it was refused. For checking a document
//! folder, and for measuring the loader on damaged files. `--text` prints the text too.
#![allow(clippy::print_stdout)]

use std::path::Path;

fn main() {
    let options = troupe_docs::LoadOptions::default();
    let mut print_text = false;
    for arg in std::env::args().skip(1) {
        if arg == "--text" {
            print_text = true;
            continue;
        }
        match troupe_docs::load_file(Path::new(&arg), &options) {
            Ok(file) => {
                println!(
                    "ok\t{arg}\t{:?}\t{}\t{} chars",
                    file.format,
                    file.encoding.unwrap_or("-"),
                    file.text.chars().count()
                );
                if print_text {
                    println!("{}", file.text);
                }
            }
            Err(problem) => println!("refused\t{arg}\t{}", problem.reason),
        }
    }
}
