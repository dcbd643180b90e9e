//! Sharing the camera: the QR codes of its link, read back by a real QR reader (zbarimg, from
//! Debian's zbar-tools), are exactly the link `peercam token` prints, and that link opens the
//! page. The terminal's code (`peercam token --qr`) is turned into an image module by module;
//! the page's (`/api/share.svg`) is drawn by rsvg-convert.
//!
//! Needs zbar-tools and librsvg2-bin (`scripts/setup.sh --test` installs them); without them
//! it fails saying so.

// Each test binary uses a different part of the shared support.
#[allow(dead_code)]
mod support;

use std::path::Path;
use std::process::Command;

use support::device::{free_port, serve_command, Serve, BIN, START_LIMIT};
use support::scratch::Scratch;

/// Runs `program args…`; its stdout, or a failure naming what is missing.
fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program}: {e} (scripts/setup.sh --test installs zbar-tools and librsvg2-bin)")
        });
    assert!(out.status.success(), "{program} {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// What zbarimg reads in the image at `path`.
fn read_qr(path: &Path) -> String {
    run("zbarimg", &["--raw", "-q", path.to_str().unwrap()])
}

/// The terminal's code (two rows of modules per line: `█` both light, ` ` both dark, `▀`
/// light over dark, `▄` dark over light) as a plain PBM image, 4 pixels per module.
fn terminal_code_to_pbm(code: &str) -> String {
    let mut rows: Vec<Vec<u8>> = Vec::new();
    for line in code.lines().filter(|l| !l.is_empty()) {
        let (mut upper, mut lower) = (Vec::new(), Vec::new());
        for c in line.chars() {
            let (u, l) = match c {
                '█' => (0, 0),
                ' ' => (1, 1),
                '▀' => (0, 1),
                '▄' => (1, 0),
                other => panic!("unexpected {other:?} in the code"),
            };
            upper.push(u);
            lower.push(l);
        }
        rows.push(upper);
        rows.push(lower);
    }
    const SCALE: usize = 4;
    let width = rows[0].len() * SCALE;
    let mut pbm = format!("P1\n{width} {}\n", rows.len() * SCALE);
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .flat_map(|b| std::iter::repeat_n(b.to_string(), SCALE))
            .collect();
        for _ in 0..SCALE {
            pbm.push_str(&line.join(" "));
            pbm.push('\n');
        }
    }
    pbm
}

#[test]
fn the_qr_codes_carry_exactly_the_printed_link_and_it_opens_the_page() {
    let dir = Scratch::new("share");
    let state = dir.join("state");
    let port = free_port();
    let config = dir.join("peercam.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nstate_dir = {:?}\n\n[tls]\nenabled = false\n",
            state.to_str().unwrap()
        ),
    )
    .unwrap();

    // `peercam token --qr`: the link, then its code.
    let out = Command::new(BIN)
        .args(["token", "--qr", "--config", config.to_str().unwrap()])
        .env_remove("STATE_DIRECTORY")
        .output()
        .expect("peercam token runs");
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (link, code) = stdout.split_once('\n').expect("a link, then a code");
    assert!(
        link.starts_with(&format!("http://127.0.0.1:{port}/?token=")),
        "{link}"
    );
    let pbm = dir.join("terminal.pbm");
    std::fs::write(&pbm, terminal_code_to_pbm(code)).unwrap();
    assert_eq!(read_qr(&pbm), link, "the terminal's code");

    // The device, with the same token: the page's code is the same link.
    let mut svc = Serve::spawn(
        serve_command(port, &["--config", config.to_str().unwrap(), "--no-camera"]),
        port,
    );
    svc.line(" ready: ", START_LIMIT);
    let token = link.split_once("?token=").unwrap().1.to_owned();
    let addr = svc.addr();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (svg, refused, page) = rt.block_on(async {
        let svg = support::http::get_authorized(addr, "/api/share.svg", Some(&token)).await;
        let refused = support::http::get(addr, "/api/share.svg").await;
        let path = link.split_once(&format!("{port}")).unwrap().1.to_owned();
        let page = support::http::get(addr, &path).await;
        (svg, refused, page)
    });
    assert_eq!(svg.0, 200, "{svg:?}");
    assert_eq!(refused.0, 401, "the code is behind the access check");
    let svg_path = dir.join("page.svg");
    std::fs::write(&svg_path, &svg.1).unwrap();
    let png = dir.join("page.png");
    run(
        "rsvg-convert",
        &["-o", png.to_str().unwrap(), svg_path.to_str().unwrap()],
    );
    assert_eq!(read_qr(&png), link, "the page's code");

    // The link opens the page.
    assert_eq!(page.0, 200, "{:.300}", page.1);
    assert!(page.1.contains("id=\"share\""), "{:.300}", page.1);
    drop(svc);
}
