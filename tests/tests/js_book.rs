//! Runs the examples of the JS API chapter (book/src/js-api.md) through the real binary: every
//! ```js block that is followed by a ```console block is served, each `$ curl ...` line of that
//! block is run (against the test server's port instead of 3000), and its output must equal
//! the lines below it (`Date:` headers and CRs removed).

mod js_common;

use js_common::JsServer;
use std::process::Command;

struct Example {
    app: String,
    /// (curl command line, expected output)
    runs: Vec<(String, String)>,
}

fn examples(md: &str) -> Vec<Example> {
    let mut blocks: Vec<(String, String)> = Vec::new();
    let mut lines = md.lines();
    while let Some(l) = lines.next() {
        if let Some(lang) = l.strip_prefix("```") {
            let lang = lang.trim().to_string();
            let mut body = String::new();
            for l in lines.by_ref() {
                if l.starts_with("```") {
                    break;
                }
                body.push_str(l);
                body.push('\n');
            }
            blocks.push((lang, body));
        }
    }
    let mut out = Vec::new();
    for w in blocks.windows(2) {
        let ((lang, app), (next_lang, console)) = (&w[0], &w[1]);
        if lang != "js" || next_lang != "console" {
            continue;
        }
        let mut runs: Vec<(String, String)> = Vec::new();
        for l in console.lines() {
            if let Some(cmd) = l.strip_prefix("$ ") {
                runs.push((cmd.to_string(), String::new()));
            } else if let Some(last) = runs.last_mut() {
                last.1.push_str(l);
                last.1.push('\n');
            }
        }
        out.push(Example {
            app: app.clone(),
            runs,
        });
    }
    out
}

fn normalise(s: &str) -> String {
    s.replace("\r\n", "\n")
        .lines()
        .filter(|l| !l.starts_with("Date:"))
        .collect::<Vec<_>>()
        .join("\n")
        .trim_end()
        .to_string()
}

#[test]
fn book_examples_run() {
    let md_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../book/src/js-api.md");
    let md = std::fs::read_to_string(md_path).expect("book/src/js-api.md");
    let examples = examples(&md);
    assert!(
        examples.len() >= 6,
        "found only {} runnable examples",
        examples.len()
    );
    for ex in &examples {
        let s = JsServer::inline(&ex.app, &[], 1, &[]);
        for (cmd, expected) in &ex.runs {
            assert!(
                cmd.starts_with("curl "),
                "only curl commands are run: {cmd}"
            );
            let cmd = cmd.replace("localhost:3000", &format!("127.0.0.1:{}", s.port));
            let out = Command::new("sh")
                .arg("-c")
                .arg(&cmd)
                .output()
                .expect("run curl");
            let got = normalise(&String::from_utf8_lossy(&out.stdout));
            assert_eq!(got, normalise(expected), "`{cmd}` for the app:\n{}", ex.app);
        }
    }
}
