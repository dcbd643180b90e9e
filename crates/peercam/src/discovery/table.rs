//! The text `peercam discover` prints: a table of the devices found (with whether each needs
//! its access token) and, for each with TLS, its certificate's fingerprint and plain http URL.
//!
//! It must not browse or touch the network, and must not print anything itself. Every string
//! it shows came from the network, so it replaces control characters before showing them.

use super::FoundCamera;

/// Formats the list for `peercam discover`: one line per device under a header, or a
/// sentence when there is none; then, for each device with TLS, its certificate's
/// fingerprint (to compare with what the browser shows) and its plain http URL. Text from the
/// network is shown with control characters replaced, so a hostile TXT record cannot drive
/// the terminal.
pub fn format_table(found: &[FoundCamera]) -> String {
    if found.is_empty() {
        return "no cameras found\n".to_owned();
    }
    let txt = |c: &FoundCamera, key: &str| c.txt.get(key).cloned().unwrap_or_default();
    // TOKEN: whether the camera needs its access link (TXT `auth=1`).
    let header = ["NAME", "URL", "CONV", "TLS", "TOKEN", "VERSION", "HOST"].map(str::to_owned);
    let rows: Vec<[String; 7]> = found
        .iter()
        .map(|c| {
            [
                c.name.clone(),
                c.url.clone(),
                txt(c, "conv"),
                yes_no(&txt(c, "tls")),
                yes_no(&txt(c, "auth")),
                txt(c, "ver"),
                c.host.clone(),
            ]
            .map(|cell| printable(&cell))
        })
        .collect();
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(widths) {
            line.push_str(&format!("{cell:<width$}  "));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let secure: Vec<&FoundCamera> = found.iter().filter(|c| c.url != c.http_url).collect();
    let name_width = secure
        .iter()
        .map(|c| printable(&c.name).chars().count())
        .max()
        .unwrap_or(0);
    for (i, c) in secure.iter().enumerate() {
        if i == 0 {
            out.push('\n');
        }
        let fingerprint = c.fingerprint.as_deref().map_or_else(
            || "certificate fingerprint not advertised".to_owned(),
            |fp| format!("certificate SHA-256 {}", printable(fp)),
        );
        let name = printable(&c.name);
        out.push_str(&format!("{name:<name_width$}  {fingerprint}\n"));
        out.push_str(&format!(
            "{:<name_width$}  also {} (to watch; camera and microphone need https)\n",
            "",
            printable(&c.http_url)
        ));
    }
    out
}

fn yes_no(flag: &str) -> String {
    match flag {
        "1" => "yes",
        "0" => "no",
        _ => "?",
    }
    .to_owned()
}

fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::browse::tests::found;
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn the_table_lines_up_and_neutralises_control_characters() {
        let a = found(
            &[
                ("conv", "porch"),
                ("tls", "0"),
                ("auth", "1"),
                ("ver", "0.1.0"),
            ],
            vec![Ipv4Addr::new(192, 0, 2, 1).into()],
        );
        let mut b = found(&[("conv", "x\u{1b}[2J")], vec![]);
        b.name = "Garage".into();
        let table = format_table(&[a, b]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(lines[0].starts_with("NAME       URL"), "{table}");
        assert!(
            lines[1].starts_with("Porch Cam  http://192.0.2.1:8080/"),
            "{table}"
        );
        assert!(
            lines[1].contains("porch") && lines[1].contains("yes"),
            "{table}"
        );
        // `auth=1`: the TOKEN column says a token is needed.
        let token_column = lines[0].find("TOKEN").unwrap();
        assert_eq!(
            lines[1][token_column..].split_whitespace().next(),
            Some("yes")
        );
        assert_eq!(
            lines[2][token_column..].split_whitespace().next(),
            Some("?")
        );
        assert!(
            lines[2].contains("x?[2J") && !table.contains('\u{1b}'),
            "{table}"
        );
        let url_column = lines[0].find("URL").unwrap();
        assert_eq!(lines[2].find("http://porch-cam.local"), Some(url_column));
        assert_eq!(format_table(&[]), "no cameras found\n");
    }

    #[test]
    fn tls_cameras_show_their_fingerprint_and_plain_url() {
        let lan: IpAddr = Ipv4Addr::new(192, 0, 2, 1).into();
        let c = found(&[("tls", "1"), ("fp", "sha-256 AB:CD\u{1b}[2J")], vec![lan]);
        assert_eq!(c.url, "https://192.0.2.1:8080/");
        assert_eq!(c.http_url, "http://192.0.2.1:8080/");
        assert_eq!(c.fingerprint.as_deref(), Some("AB:CD\u{1b}[2J"));
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["fingerprint"], "AB:CD\u{1b}[2J");
        assert_eq!(json["http_url"], "http://192.0.2.1:8080/");
        let mut plain = found(&[("tls", "0")], vec![lan]);
        plain.name = "Garage".into();
        let table = format_table(&[c, plain]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 6, "{table}");
        assert!(
            lines[1].starts_with("Porch Cam  https://192.0.2.1:8080/"),
            "{table}"
        );
        assert_eq!(lines[3], "");
        assert_eq!(
            lines[4], "Porch Cam  certificate SHA-256 AB:CD?[2J",
            "{table}"
        );
        assert!(
            lines[5].starts_with("           also http://192.0.2.1:8080/ (to watch"),
            "{table}"
        );
        assert!(!table.contains('\u{1b}'));
    }
}
