//! Every `.tk` file in stdlib/, built at its default compile-time values and default options,
//! assembles with ptxas for sm_80 and sm_90 without spilling: what `tkc build --target ptx` of a
//! stdlib file produces for a user who passes no `-D`.

mod common;

#[test]
fn every_stdlib_file_assembles_at_default_options_without_spills() {
    let dir = common::root().join("stdlib");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("stdlib/ exists")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tk"))
        .collect();
    files.sort();
    assert!(files.len() >= 7, "stdlib has only {files:?}");
    for f in &files {
        let m = common::compile(f, &[]);
        common::assemble_all(&m, &tk_backend_ptx::Options::default(), f.trim_end_matches(".tk"));
    }
}
