package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/sdk"
)

// DefaultMaxBodyBytes is the largest request body accepted.
const DefaultMaxBodyBytes = 64 << 10

const (
	contentJSON = "application/json"
	contentForm = "application/x-www-form-urlencoded"
)

// readBody reads the request body, at most s.maxBody bytes, and returns its
// media type ("" for an empty body). A body must be valid UTF-8.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, string, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, "", &apiError{status: http.StatusRequestEntityTooLarge, code: sdk.CodePayloadTooLarge, message: fmt.Sprintf("the request body is larger than %d bytes", tooLarge.Limit)}
		}
		return nil, "", badRequest("the request body could not be read")
	}
	if len(body) == 0 {
		return nil, "", nil
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil, "", &apiError{status: http.StatusUnsupportedMediaType, code: sdk.CodeUnsupportedMediaType, message: "a request body needs a Content-Type"}
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return nil, "", &apiError{status: http.StatusUnsupportedMediaType, code: sdk.CodeUnsupportedMediaType, message: "the Content-Type header is malformed"}
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return nil, "", &apiError{status: http.StatusUnsupportedMediaType, code: sdk.CodeUnsupportedMediaType, message: "only the utf-8 charset is accepted"}
	}
	if !utf8.Valid(body) {
		return nil, "", badRequest("the request body is not valid UTF-8")
	}
	return body, mt, nil
}

// decodeJSON decodes the request's JSON body into dst: unknown fields,
// trailing data and wrong types are refused. An empty body is refused
// unless optional, when dst is left as it is.
func (s *Server) decodeJSON(w http.ResponseWriter, r *http.Request, dst any, optional bool) error {
	body, mt, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	if body == nil {
		if optional {
			return nil
		}
		return badRequest("a JSON request body is required")
	}
	if mt != contentJSON {
		return &apiError{status: http.StatusUnsupportedMediaType, code: sdk.CodeUnsupportedMediaType, message: fmt.Sprintf("the request body must be %s, not %s", contentJSON, mt)}
	}
	return decodeStrict(body, dst)
}

func decodeStrict(body []byte, dst any) error {
	if err := checkKeys(body, dst); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return badRequest(describeJSONError(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("the request body has data after its JSON value")
	}
	return nil
}

// checkKeys requires body to be one JSON object whose keys are each given
// once and spelled exactly as dst's fields: encoding/json would take "OWNER"
// for "owner" and let the last of two "owner" keys win, so that a proxy and
// the server could read one body differently.
func checkKeys(body []byte, dst any) error {
	known := jsonFields(reflect.TypeOf(dst))
	seen := map[string]bool{}
	return eachMember(body, func(key string, dec *json.Decoder) error {
		switch {
		case !known[key]:
			return badRequest(fmt.Sprintf("invalid request body: unknown field %q", key))
		case seen[key]:
			return badRequest(fmt.Sprintf("invalid request body: field %q is given twice", key))
		}
		seen[key] = true
		return skipValue(dec)
	})
}

// eachMember requires body to be one JSON object and nothing after it, and
// calls member with each key in turn; member must read the key's value from
// dec (skipValue, or Decode) or return an error, which eachMember returns.
func eachMember(body []byte, member func(key string, dec *json.Decoder) error) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		if err != nil {
			return badRequest(describeJSONError(err))
		}
		return badRequest("the request body must be a JSON object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return badRequest(describeJSONError(err))
		}
		key, _ := tok.(string)
		if err := member(key, dec); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return badRequest(describeJSONError(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("the request body has data after its JSON value")
	}
	return nil
}

// skipValue reads the next JSON value from dec and drops it.
func skipValue(dec *json.Decoder) error {
	var skip json.RawMessage
	if err := dec.Decode(&skip); err != nil {
		return badRequest(describeJSONError(err))
	}
	return nil
}

// jsonFields returns the JSON names of the fields of the struct t points to,
// those of embedded structs included.
func jsonFields(t reflect.Type) map[string]bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	out := map[string]bool{}
	if t.Kind() != reflect.Struct {
		return out
	}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-":
		case f.Anonymous && name == "":
			for k := range jsonFields(f.Type) {
				out[k] = true
			}
		case name != "":
			out[name] = true
		case f.IsExported():
			out[f.Name] = true
		}
	}
	return out
}

// describeJSONError says what is wrong with a JSON body without echoing it.
func describeJSONError(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("the request body is not valid JSON (at byte %d)", syntax.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("field %q must be %s", typ.Field, jsonKind(typ.Type.Kind().String()))
		}
		return "the request body must be a JSON object"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "the request body is truncated JSON"
	default:
		// Unknown fields, and errors of the sdk types' own decoders
		// (durations, RFC 3339 times), which never contain a secret.
		return "invalid request body: " + err.Error()
	}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "slice", "array":
		return "an array"
	case "bool":
		return "true or false"
	case "struct", "map", "ptr":
		return "an object"
	default:
		return "a number"
	}
}

// readSecret reads the token parameter of an RFC 7009 or RFC 7662 request:
// a form body (the RFCs' encoding) or a JSON sdk.SecretRequest. Every other
// parameter (token_type_hint, the client_id and client_secret that clients
// authenticating in the body send, anything else) is ignored, as RFC 6749
// §3.2 says of unrecognized request parameters. The token itself must be
// given exactly once, so that a proxy and the server cannot read different
// secrets from one body.
func (s *Server) readSecret(w http.ResponseWriter, r *http.Request) (string, error) {
	body, mt, err := s.readBody(w, r)
	if err != nil {
		return "", err
	}
	var secret string
	switch mt {
	case "":
		return "", badRequest("the token parameter is required")
	case contentForm:
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return "", badRequest("the form body is malformed")
		}
		if len(form[tokenParam]) > 1 {
			return "", badRequest(fmt.Sprintf("form field %q must be given once", tokenParam))
		}
		secret = form.Get(tokenParam)
	case contentJSON:
		if secret, err = secretFromJSON(body); err != nil {
			return "", err
		}
	default:
		return "", &apiError{status: http.StatusUnsupportedMediaType, code: sdk.CodeUnsupportedMediaType, message: fmt.Sprintf("the request body must be %s or %s", contentForm, contentJSON)}
	}
	if secret == "" {
		return "", badRequest("the token parameter is required")
	}
	return secret, nil
}

// tokenParam is the parameter of RFC 7009 and RFC 7662 that holds the
// secret, in the form and in the JSON body alike.
const tokenParam = "token"

// secretFromJSON returns the "token" member of a JSON object, "" if there
// is none; other members are skipped whatever they hold. The key must be
// spelled exactly and given once: encoding/json would also take "TOKEN" and
// let the last of two keys win.
func secretFromJSON(body []byte) (string, error) {
	secret, found := "", false
	err := eachMember(body, func(key string, dec *json.Decoder) error {
		switch {
		case key != tokenParam:
			return skipValue(dec)
		case found:
			return badRequest(fmt.Sprintf("invalid request body: field %q is given twice", tokenParam))
		}
		found = true
		var v *string
		if err := dec.Decode(&v); err != nil {
			var typ *json.UnmarshalTypeError
			if errors.As(err, &typ) {
				return badRequest(fmt.Sprintf("field %q must be a string", tokenParam))
			}
			return badRequest(describeJSONError(err))
		}
		if v != nil {
			secret = *v
		}
		return nil
	})
	return secret, err
}

// parseTokenID reads the {id} path parameter.
func parseTokenID(r *http.Request) (domain.TokenID, error) {
	id, err := domain.ParseTokenID(r.PathValue("id"))
	if err != nil {
		return domain.TokenID{}, badRequest("the token id in the path is not a valid token id (a 26-character ULID)")
	}
	return id, nil
}

// queryDuration reads a positive duration parameter; absent is zero.
func queryDuration(q url.Values, name string) (time.Duration, error) {
	s := q.Get(name)
	if s == "" {
		return 0, nil
	}
	d, err := domain.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, badRequest(fmt.Sprintf("%s must be a positive duration such as \"30d\", \"720h\" or whole seconds", name))
	}
	return d, nil
}

func queryInt(q url.Values, name string) (int, error) {
	s := q.Get(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, badRequest(fmt.Sprintf("%s must be a positive whole number", name))
	}
	return n, nil
}

// checkQuery refuses parameters other than allowed, and repeated ones, so a
// misspelled filter is an error rather than silently ignored.
func checkQuery(q url.Values, allowed ...string) error {
	for k, v := range q {
		ok := false
		for _, a := range allowed {
			ok = ok || a == k
		}
		if !ok {
			return badRequest(fmt.Sprintf("unknown query parameter %q", k))
		}
		if len(v) != 1 {
			return badRequest(fmt.Sprintf("query parameter %q must be given once", k))
		}
	}
	return nil
}

// writeJSON answers v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"internal error"}}`)
	}
	h := w.Header()
	h.Set("Content-Type", contentJSON)
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
