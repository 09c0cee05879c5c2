//! Generates the parser from `src/grammar.lalrpop` into `OUT_DIR`.

fn main() {
    lalrpop::Configuration::new()
        .set_in_dir("src")
        .emit_rerun_directives(true)
        .process()
        .expect("lalrpop failed to generate the tk parser from src/grammar.lalrpop");
}
