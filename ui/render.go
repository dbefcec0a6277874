package ui

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/tokenledger/tokenledger/api"
)

// page is what every template gets: the page's title, the signed-in visit
// (nil on the sign-in and error pages of a stranger), an error to show,
// and the page's own data.
type page struct {
	Title string
	Me    *visit
	Error string
	Data  any
}

// pageNames are the templates under templates/, each rendered inside
// layout.html.
var pageNames = []string{"signin", "error", "list", "token", "issue", "secret", "owner", "state"}

// pages are the parsed templates, by name.
type pages struct {
	byName map[string]*template.Template
}

func parsePages() (*pages, error) {
	base, err := template.New("layout.html").Funcs(template.FuncMap{"rows": tableRows}).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("ui: parse layout: %w", err)
	}
	p := &pages{byName: map[string]*template.Template{}}
	for _, name := range pageNames {
		t, err := template.Must(base.Clone()).ParseFS(templateFS, "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("ui: parse page %s: %w", name, err)
		}
		p.byName[name] = t
	}
	return p, nil
}

// render answers the page name with status. The page is rendered to a buffer first, so a
// template error is a clean 500 rather than half a page.
func (s *server) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	var buf bytes.Buffer
	if err := s.pages.write(&buf, name, p); err != nil {
		s.log.ErrorContext(r.Context(), "render page", slog.String("request_id", api.RequestID(r.Context())),
			slog.String("page", name), slog.Any("error", err))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (p *pages) write(buf *bytes.Buffer, name string, data page) error {
	t, ok := p.byName[name]
	if !ok {
		return fmt.Errorf("no page %q", name)
	}
	return t.ExecuteTemplate(buf, "layout.html", data)
}

// answerError is an error answered with its own status, code and message.
type answerError struct{ a api.ErrorAnswer }

func (e *answerError) Error() string { return e.a.Message }

func refuse(status int, code, message string) error {
	return &answerError{api.ErrorAnswer{Status: status, Code: code, Message: message}}
}

// answer is how err is answered: as the API answers it.
func answer(err error) api.ErrorAnswer {
	var ae *answerError
	if errors.As(err, &ae) {
		return ae.a
	}
	return api.Classify(err)
}

// fail answers err with the API's status and message, as a page; a 5xx is
// logged with its cause, which the browser does not see.
func (s *server) fail(w http.ResponseWriter, r *http.Request, v *visit, err error) {
	a := answer(err)
	if a.Status >= 500 {
		s.log.ErrorContext(r.Context(), "ui request failed", slog.String("request_id", api.RequestID(r.Context())), slog.Any("error", err))
	}
	if a.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	s.render(w, r, a.Status, "error", page{Title: http.StatusText(a.Status), Me: v, Data: a})
}
