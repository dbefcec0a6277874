package ui

import (
	"html/template"
	"strconv"
	"strings"
)

// tableRows is the HTML of the rows of a token table (the list, the state
// at an instant). It is the one part of a page that repeats thousands of
// times, so it is written here rather than by the template engine, whose
// reflective evaluation costs several times more per row. Every value goes
// through template.HTMLEscapeString, which is safe both in text and in a
// double-quoted attribute value, the only places values are put.
func tableRows(rows []row) template.HTML {
	var b strings.Builder
	b.Grow(len(rows) * 700)
	esc := func(s string) { b.WriteString(template.HTMLEscapeString(s)) }
	phrase := func(class string, p Phrase) {
		b.WriteString(`<td class="`)
		b.WriteString(class)
		b.WriteString(`">`)
		if p.When.Set {
			b.WriteString(`<time datetime="`)
			esc(p.When.ISO)
			b.WriteString(`" title="`)
			esc(p.When.Exact)
			b.WriteString(`">`)
			esc(p.Text)
			b.WriteString(`</time>`)
		} else {
			esc(p.Text)
		}
		b.WriteString("</td>")
	}
	for _, r := range rows {
		b.WriteString(`<tr id="t-`)
		esc(r.ID)
		b.WriteString(`"><td><a href="/ui/tokens/`)
		esc(r.ID)
		b.WriteString(`">`)
		if r.Name == "" {
			b.WriteString("(no name)")
		} else {
			esc(r.Name)
		}
		b.WriteString("</a></td><td>")
		esc(r.Owner)
		b.WriteString("</td><td>")
		for _, s := range r.Scopes {
			b.WriteString("<code>")
			esc(s)
			b.WriteString("</code> ")
		}
		b.WriteString("</td><td>")
		esc(r.Kind)
		b.WriteString(`</td><td class="status-`)
		esc(r.Status)
		b.WriteString(`">`)
		esc(r.Status)
		b.WriteString("</td>")
		phrase("last-used", r.LastUsed)
		phrase("expiry", r.Expiry)
		b.WriteString(`<td class="num">`)
		b.WriteString(strconv.FormatUint(r.UseCount, 10))
		b.WriteString("</td></tr>\n")
	}
	// The builder holds only literals above and escaped values.
	return template.HTML(b.String())
}
