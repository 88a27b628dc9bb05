//! Go's `text/tabwriter` layout, which kubectl's `describe` output is made of: tab-terminated
//! cells, each column block (consecutive lines having a cell in that column) padded to its
//! widest cell plus the padding; the last cell of a line is not aligned.

/// Lays out `text` (lines of tab-separated cells) as Go's tabwriter with `padding` would.
pub fn tabwrite(text: &str, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    let mut out = String::new();
    let mut widths = Vec::new();
    format(&lines, 0, lines.len(), &mut widths, padding, &mut out);
    out
}

fn format(
    lines: &[Vec<&str>],
    mut line0: usize,
    line1: usize,
    widths: &mut Vec<usize>,
    padding: usize,
    out: &mut String,
) {
    let column = widths.len();
    let mut this = line0;
    while this < line1 {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        write_lines(lines, line0, this, widths, out);
        line0 = this;
        let mut width = 0;
        while this < line1 && column + 1 < lines[this].len() {
            width = width.max(lines[this][column].chars().count() + padding);
            this += 1;
        }
        widths.push(width);
        format(lines, line0, this, widths, padding, out);
        widths.pop();
        line0 = this;
    }
    write_lines(lines, line0, line1, widths, out);
}

fn write_lines(lines: &[Vec<&str>], from: usize, to: usize, widths: &[usize], out: &mut String) {
    for line in &lines[from..to] {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j + 1 < line.len() && j < widths.len() {
                let pad = widths[j].saturating_sub(cell.chars().count());
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_align_across_indents_and_break_on_plain_lines() {
        let text = "Name:\tweb\nRollingUpdateStrategy:\t25%\nPod Template:\n  Labels:\tapp=web\n  Node-Selectors:\t<none>\nEvents:\t<none>\n";
        assert_eq!(
            tabwrite(text, 2),
            "Name:                   web\nRollingUpdateStrategy:  25%\nPod Template:\n  Labels:          app=web\n  Node-Selectors:  <none>\nEvents:            <none>\n"
        );
    }

    #[test]
    fn nested_columns_form_their_own_blocks() {
        let text = "  Type\tStatus\tReason\n  ----\t------\t------\n  Available\tTrue\tMinimumReplicasAvailable\n";
        assert_eq!(
            tabwrite(text, 2),
            "  Type       Status  Reason\n  ----       ------  ------\n  Available  True    MinimumReplicasAvailable\n"
        );
    }
}
