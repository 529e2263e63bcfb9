//! The README's quick start is `examples/quickstart`'s code: every block of it that the README
//! marks with `<!-- quickstart: FILE -->` must stand in that app's FILE, line for line
//! (indentation aside). If this fails, the README and the example drifted apart: fix whichever
//! is wrong, then both agree. (It lives here, not in the example, so that `cargo test` never
//! relinks the example's server binary without cargo-leptos' settings.)

use std::path::Path;

#[test]
fn the_readmes_quick_start_is_this_apps_code() {
    let here = example();
    let readme = std::fs::read_to_string(here.join("../../README.md")).expect("README.md");
    let blocks = marked_blocks(&readme);
    assert!(
        blocks.len() >= 3,
        "the README marks its Cargo.toml, mounting and component blocks"
    );
    for (file, block) in &blocks {
        let source = std::fs::read_to_string(here.join(file))
            .unwrap_or_else(|e| panic!("the README names {file}: {e}"));
        let wanted = lines(block);
        let have = lines(&source);
        assert!(
            have.windows(wanted.len()).any(|w| w == wanted.as_slice()),
            "the README's block for {file} is not in examples/quickstart/{file}:\n{block}"
        );
    }
}

/// The example app's folder.
fn example() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart")
}

/// `(file, code)` for every fenced block right after a `<!-- quickstart: FILE -->` line.
fn marked_blocks(readme: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        let Some(file) = line
            .trim()
            .strip_prefix("<!-- quickstart: ")
            .and_then(|rest| rest.strip_suffix(" -->"))
        else {
            continue;
        };
        let opening = lines.next().unwrap_or_default();
        assert!(
            opening.starts_with("```"),
            "a code block follows the marker for {file}"
        );
        let code: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .collect();
        out.push((file.to_string(), code.join("\n")));
    }
    out
}

/// Non-blank lines without their indentation.
fn lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn a_block_that_is_not_in_the_file_is_found_out() {
    let blocks = marked_blocks(
        "x\n<!-- quickstart: src/app.rs -->\n```rust\nfn nowhere_in_the_app() {}\n```\n",
    );
    assert_eq!(blocks.len(), 1);
    let source = std::fs::read_to_string(example().join(&blocks[0].0)).unwrap();
    let wanted = lines(&blocks[0].1);
    assert!(!lines(&source)
        .windows(wanted.len())
        .any(|w| w == wanted.as_slice()));
}
