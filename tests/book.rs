//! Every `tk` code block of the book (`book/src/**/*.md`) goes through the compiler: a block
//! fenced ```` ```tk ```` compiles without errors (with the repository's `stdlib/` for imports
//! and every compile-time parameter at its default), and a block fenced
//! ```` ```tk,compile_fail ```` must be rejected with an error diagnostic, so that the examples
//! the book shows as mistakes stay mistakes. A kernel or helper of a block that has the name of
//! one in a stdlib `moe_*.tk` file must be that item verbatim (the MoE walkthrough shows the real
//! code). `mdbook` itself is not needed: the blocks are found here by reading the Markdown fences.

use crate::common;

use std::path::{Path, PathBuf};
use tk_driver::{compile_source, CompileOptions};

/// A fenced code block: where it starts, its info string and its text.
#[derive(Debug)]
struct CodeBlock {
    line: usize,
    info: String,
    text: String,
}

/// The fenced code blocks of a Markdown text (backtick or tilde fences of three or more,
/// indented by at most three spaces; the closing fence uses the same character, at least as
/// many times, and nothing else).
fn code_blocks(md: &str) -> Vec<CodeBlock> {
    let mut out = Vec::new();
    let mut open: Option<(char, usize, CodeBlock)> = None;
    for (i, line) in md.lines().enumerate() {
        let trimmed = line.trim_start_matches(' ');
        let indent = line.len() - trimmed.len();
        let fence = |c: char| trimmed.chars().take_while(|&x| x == c).count();
        match &mut open {
            None => {
                if indent > 3 {
                    continue;
                }
                for c in ['`', '~'] {
                    let n = fence(c);
                    if n >= 3 {
                        let info = trimmed[n..].trim().to_string();
                        open = Some((c, n, CodeBlock { line: i + 1, info, text: String::new() }));
                        break;
                    }
                }
            }
            Some((c, n, block)) => {
                let m = fence(*c);
                if indent <= 3 && m >= *n && trimmed[m..].trim().is_empty() {
                    let (_, _, block) = open.take().expect("open");
                    out.push(block);
                } else {
                    block.text.push_str(line);
                    block.text.push('\n');
                }
            }
        }
    }
    out
}

/// Every `.md` file under `dir`, sorted.
fn markdown_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The language and the attributes of an info string: `tk,compile_fail` → ("tk", ["compile_fail"]).
fn parse_info(info: &str) -> (String, Vec<String>) {
    let mut parts = info.split([',', ' ']).map(str::trim).filter(|s| !s.is_empty());
    let lang = parts.next().unwrap_or("").to_string();
    (lang, parts.map(str::to_string).collect())
}

/// The text of item `name` (`kernel name<...` / `kernel name(` / `fn name(`) in `src`: from its
/// first line to the first line that is exactly `}`.
fn item_text(src: &str, name: &str) -> Option<String> {
    let lines: Vec<&str> = src.lines().collect();
    let starts = |l: &str| {
        ["kernel ", "fn "].iter().any(|kw| {
            l.strip_prefix(kw)
                .and_then(|rest| rest.strip_prefix(name))
                .is_some_and(|rest| rest.starts_with('<') || rest.starts_with('('))
        })
    };
    let first = lines.iter().position(|l| starts(l))?;
    let len = lines[first..].iter().position(|l| *l == "}")?;
    Some(lines[first..=first + len].join("\n"))
}

/// Names of the kernels and helpers defined at the start of a line of `src`.
fn item_names(src: &str) -> Vec<String> {
    src.lines()
        .filter_map(|l| l.strip_prefix("kernel ").or_else(|| l.strip_prefix("fn ")))
        .map(|rest| rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect())
        .collect()
}

#[test]
fn the_fence_reader_finds_blocks_and_their_info() {
    let md = "text\n```tk\nkernel a() {}\n```\n\n````tk,compile_fail\nx\n```\nstill inside\n````\n  ~~~sh\nls\n  ~~~\n";
    let b = code_blocks(md);
    assert_eq!(b.len(), 3, "{b:?}");
    assert_eq!((b[0].line, b[0].info.as_str(), b[0].text.as_str()), (2, "tk", "kernel a() {}\n"));
    assert_eq!(b[1].info, "tk,compile_fail");
    assert_eq!(b[1].text, "x\n```\nstill inside\n");
    assert_eq!(parse_info(&b[1].info), ("tk".to_string(), vec!["compile_fail".to_string()]));
    assert_eq!(b[2].text, "ls\n");
}

#[test]
fn every_tk_block_in_the_book_compiles() {
    let root = common::repo_root();
    let stdlib = root.join("stdlib");
    let files = markdown_files(&root.join("book/src"));
    assert!(files.len() >= 5, "expected the book's pages under book/src, found {files:?}");
    let moe_sources: Vec<(String, String)> = common::tk_files("stdlib")
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("moe_")))
        .map(|p| (p.display().to_string(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    let mut checked = 0;
    let mut verbatim = 0;
    let mut failures = Vec::new();
    for f in &files {
        let md = std::fs::read_to_string(f).unwrap();
        let rel = f.strip_prefix(&root).unwrap_or(f).display().to_string();
        for block in code_blocks(&md) {
            let (lang, attrs) = parse_info(&block.info);
            if lang != "tk" {
                continue;
            }
            let should_fail = attrs.iter().any(|a| a == "compile_fail");
            if let Some(a) = attrs.iter().find(|a| *a != "compile_fail") {
                failures.push(format!("{rel}:{}: unknown fence attribute `{a}`", block.line));
                continue;
            }
            let name = format!("{rel}:{}", block.line);
            for item in item_names(&block.text) {
                for (path, src) in &moe_sources {
                    let Some(want) = item_text(src, &item) else { continue };
                    verbatim += 1;
                    if item_text(&block.text, &item).as_deref() != Some(want.as_str()) {
                        failures.push(format!(
                            "{name}: `{item}` differs from its definition in {path}; copy it again"
                        ));
                    }
                }
            }
            let opts = CompileOptions { stdlib_dir: Some(stdlib.clone()), ..Default::default() };
            let c = compile_source(&name, &block.text, &opts);
            checked += 1;
            match (should_fail, c.has_errors()) {
                (false, true) => failures
                    .push(format!("{name}: the block does not compile:\n{}", c.render_plain())),
                (true, false) => failures.push(format!(
                    "{name}: the block is marked compile_fail but compiles without errors"
                )),
                _ => {}
            }
        }
    }
    assert!(checked >= 20, "only {checked} tk blocks found in the book");
    assert!(verbatim >= 4, "the MoE walkthrough should show stdlib kernels ({verbatim} found)");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
