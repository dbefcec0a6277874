package main

import (
	"io"
	"strings"

	"github.com/mattn/go-runewidth"
)

// columnGap is the space between two columns of a table.
const columnGap = 2

// table lays out rows of cells in columns, each padded to the display
// width of its widest cell, as a terminal shows it: a wide character such
// as 山 takes two columns, a combining mark none. text/tabwriter counts
// runes, so owners and names in CJK scripts pushed every later column out
// of line. The last cell of a row is not padded.
type table struct {
	rows [][]string
}

// row adds a row of cells.
func (t *table) row(cells ...string) { t.rows = append(t.rows, cells) }

// write writes the table to w.
func (t *table) write(w io.Writer) error {
	var widths []int
	for _, r := range t.rows {
		for i, c := range r[:max(len(r)-1, 0)] {
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], runewidth.StringWidth(c))
		}
	}
	var b strings.Builder
	for _, r := range t.rows {
		for i, c := range r {
			b.WriteString(c)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-runewidth.StringWidth(c)+columnGap))
			}
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}
