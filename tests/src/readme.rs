//! The README's code blocks, for the tests that run what a user would copy from it.

/// The repository's README.md.
pub fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md")
}

/// The README's first block fenced as ```` ```lang ```` that contains `needle`, without its
/// fences.
pub fn readme_block(lang: &str, needle: &str) -> String {
    readme()
        .split(&format!("```{lang}\n"))
        .skip(1)
        .map(|block| block.split("```").next().unwrap_or_default())
        .find(|block| block.contains(needle))
        .unwrap_or_else(|| panic!("no ```{lang} block of the README contains `{needle}`"))
        .to_string()
}
