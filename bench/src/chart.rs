//! A hand-written SVG bar chart: no plotting dependency for four bars.

use std::fmt::Write as _;

/// One bar: a label and a time in seconds.
#[derive(Debug, Clone)]
pub struct Bar {
    /// Shown left of the bar.
    pub label: String,
    /// Bar length, in seconds.
    pub seconds: f64,
    /// Fill colour (`#rrggbb`).
    pub colour: &'static str,
}

const WIDTH: f64 = 840.0;
const LABEL_WIDTH: f64 = 370.0;
const BAR_HEIGHT: f64 = 28.0;
const GAP: f64 = 14.0;
const TOP: f64 = 58.0;
/// Room right of the longest bar for its value.
const VALUE_ROOM: f64 = 80.0;

/// Escapes text for SVG character data and attributes.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A horizontal bar chart of `bars` (median seconds) with a title and
/// a footer line naming the machine.
pub fn render(title: &str, bars: &[Bar], footer: &str) -> String {
    let longest = bars.iter().map(|b| b.seconds).fold(0.0, f64::max);
    let scale = if longest > 0.0 {
        (WIDTH - LABEL_WIDTH - VALUE_ROOM - 20.0) / longest
    } else {
        0.0
    };
    let height = TOP + bars.len() as f64 * (BAR_HEIGHT + GAP) + 40.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="14">"#
    );
    let _ = writeln!(
        svg,
        r##"<rect width="100%" height="100%" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        svg,
        r##"<text x="20" y="30" font-size="17" font-weight="bold" fill="#222">{}</text>"##,
        escape(title)
    );
    for (i, bar) in bars.iter().enumerate() {
        let y = TOP + i as f64 * (BAR_HEIGHT + GAP);
        let length = (bar.seconds * scale).max(1.0);
        let middle = y + BAR_HEIGHT / 2.0 + 5.0;
        let _ = writeln!(
            svg,
            r##"<text x="{}" y="{middle}" text-anchor="end" fill="#222">{}</text>"##,
            LABEL_WIDTH - 10.0,
            escape(&bar.label)
        );
        let _ = writeln!(
            svg,
            r#"<rect x="{LABEL_WIDTH}" y="{y}" width="{length:.1}" height="{BAR_HEIGHT}" fill="{}"/>"#,
            bar.colour
        );
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{middle}" fill="#222">{:.2} s</text>"##,
            LABEL_WIDTH + length + 8.0,
            bar.seconds
        );
    }
    let _ = writeln!(
        svg,
        r##"<text x="20" y="{}" font-size="12" fill="#555">{}</text>"##,
        height - 16.0,
        escape(footer)
    );
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_longest_and_text_is_escaped() {
        let bars = [
            Bar {
                label: "a <fast>".into(),
                seconds: 1.0,
                colour: "#000",
            },
            Bar {
                label: "b".into(),
                seconds: 4.0,
                colour: "#000",
            },
        ];
        let svg = render("t & t", &bars, "machine");
        assert!(svg.contains("a &lt;fast&gt;") && svg.contains("t &amp; t"));
        let full = WIDTH - LABEL_WIDTH - VALUE_ROOM - 20.0;
        assert!(svg.contains(&format!(r#"width="{:.1}""#, full)));
        assert!(svg.contains(&format!(r#"width="{:.1}""#, full / 4.0)));
        assert!(svg.contains("4.00 s"));
    }
}
