//! Rendering diagnostics to text with codespan-reporting.

use crate::{Diagnostic, Severity, Sources};
use codespan_reporting::diagnostic as cr;
use codespan_reporting::files::SimpleFiles;
use codespan_reporting::term;
use codespan_reporting::term::termcolor::{Ansi, NoColor};

/// Whether rendered text carries ANSI colour codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorChoice {
    Plain,
    Ansi,
}

/// Renders without colour: the form used by snapshot tests.
pub fn render_plain(sources: &Sources, diags: &[Diagnostic]) -> String {
    render(sources, diags, ColorChoice::Plain)
}

/// Renders diagnostics in the order given, each followed by a blank line.
pub fn render(sources: &Sources, diags: &[Diagnostic], color: ColorChoice) -> String {
    let mut files = SimpleFiles::new();
    let mut ids = Vec::new();
    for (_, f) in sources.iter() {
        ids.push(files.add(f.name.clone(), f.text.clone()));
    }
    let config = term::Config::default();
    let mut out: Vec<u8> = Vec::new();
    for d in diags {
        let cd = to_codespan(d, &ids);
        let result = match color {
            ColorChoice::Plain => term::emit(&mut NoColor::new(&mut out), &config, &files, &cd),
            ColorChoice::Ansi => term::emit(&mut Ansi::new(&mut out), &config, &files, &cd),
        };
        if result.is_err() {
            // A span outside its file is a compiler bug; still tell the user what went wrong.
            out.extend_from_slice(format!("error[{}]: {}\n", d.code, d.message).as_bytes());
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn to_codespan(d: &Diagnostic, ids: &[usize]) -> cr::Diagnostic<usize> {
    let sev = match d.severity {
        Severity::Error => cr::Severity::Error,
        Severity::Warning => cr::Severity::Warning,
        Severity::Remark => cr::Severity::Note,
    };
    let mut labels = Vec::new();
    if let Some(&fid) = ids.get(d.span.file.0 as usize) {
        labels.push(
            cr::Label::primary(fid, d.span.start as usize..d.span.end as usize)
                .with_message(d.span_label.clone()),
        );
    }
    for l in &d.labels {
        if let Some(&fid) = ids.get(l.span.file.0 as usize) {
            labels.push(
                cr::Label::secondary(fid, l.span.start as usize..l.span.end as usize)
                    .with_message(l.message.clone()),
            );
        }
    }
    let mut notes: Vec<String> = d.notes.iter().map(|n| format!("note: {n}")).collect();
    if let Some(h) = &d.help {
        notes.push(format!("help: {h}"));
    }
    cr::Diagnostic::new(sev)
        .with_code(d.code)
        .with_message(d.message.clone())
        .with_labels(labels)
        .with_notes(notes)
}
