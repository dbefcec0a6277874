package openapi_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf16"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/tokenledger/tokenledger/api"
	"github.com/tokenledger/tokenledger/api/openapi"
	"github.com/tokenledger/tokenledger/sdk"
)

// load parses and validates the embedded document strictly: unknown
// formats, patterns Go cannot compile, and examples or defaults that do not
// match their schemas are all errors.
func load(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openapi.Document())
	if err != nil {
		t.Fatalf("load the document: %v", err)
	}
	err = doc.Validate(loader.Context,
		openapi3.EnableSchemaFormatValidation(),
		openapi3.EnableSchemaPatternValidation(),
		openapi3.EnableSchemaDefaultsValidation(),
		openapi3.EnableExamplesValidation(),
	)
	if err != nil {
		t.Fatalf("the document is not valid OpenAPI: %v", err)
	}
	return doc
}

func TestDocumentIsValidOpenAPI303(t *testing.T) {
	t.Parallel()
	doc := load(t)
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi = %q, want 3.0.3", doc.OpenAPI)
	}
}

func TestDocumentReturnsACopy(t *testing.T) {
	t.Parallel()
	a := openapi.Document()
	a[0] = 'x'
	if b := openapi.Document(); b[0] == 'x' {
		t.Fatal("modifying the slice Document returned changed the embedded document")
	}
}

// unauthenticated are the operations anyone may call without credentials.
var unauthenticated = map[string]bool{
	"revokeSecret": true, "reportLeakedSecrets": true, "getOpenAPI": true, "getMetrics": true, "livez": true, "readyz": true,
}

// TestOperationsMatchTheAPI pins every route, its operation id and the
// statuses it may answer, so a route added to or dropped from the document,
// or a status documented or forgotten, shows up here. Every route may answer
// 400: more than one Authorization header is refused before any route runs.
func TestOperationsMatchTheAPI(t *testing.T) {
	t.Parallel()
	want := []struct {
		op       openapi.Operation
		statuses []int
	}{
		{openapi.Operation{Method: "GET", Path: "/livez", ID: "livez"}, []int{200, 400}},
		{openapi.Operation{Method: "GET", Path: "/metrics", ID: "getMetrics"}, []int{200, 400}},
		{openapi.Operation{Method: "GET", Path: "/readyz", ID: "readyz"}, []int{200, 400, 503}},
		{openapi.Operation{Method: "GET", Path: "/v1/auth", ID: "forwardAuth"}, []int{200, 400, 401, 403, 503}},
		{openapi.Operation{Method: "DELETE", Path: "/v1/auth/{path}", ID: "forwardAuthPrefixedDelete"}, []int{200, 400, 401, 403, 503}},
		{openapi.Operation{Method: "GET", Path: "/v1/auth/{path}", ID: "forwardAuthPrefixedGet"}, []int{200, 400, 401, 403, 503}},
		{openapi.Operation{Method: "OPTIONS", Path: "/v1/auth/{path}", ID: "forwardAuthPrefixedOptions"}, []int{200, 400, 401, 403, 503}},
		{openapi.Operation{Method: "PATCH", Path: "/v1/auth/{path}", ID: "forwardAuthPrefixedPatch"}, []int{200, 400, 401, 403, 503}},
		{openapi.Operation{Method: "POST", Path: "/v1/auth/{path}", ID: "forwardAuthPrefixedPost"}, []int{200, 400, 401, 403, 503}},
		{openapi.Operation{Method: "PUT", Path: "/v1/auth/{path}", ID: "forwardAuthPrefixedPut"}, []int{200, 400, 401, 403, 503}},
		{openapi.Operation{Method: "POST", Path: "/v1/introspect", ID: "introspectToken"}, []int{200, 400, 401, 403, 413, 415, 503}},
		{openapi.Operation{Method: "GET", Path: "/v1/openapi.json", ID: "getOpenAPI"}, []int{200, 400}},
		{openapi.Operation{Method: "GET", Path: "/v1/owners/{owner}/events", ID: "listOwnerEvents"}, []int{200, 400, 401, 403, 503}},
		{openapi.Operation{Method: "POST", Path: "/v1/owners/{owner}/revoke", ID: "revokeOwnerTokens"}, []int{200, 400, 401, 403, 409, 413, 415, 503}},
		{openapi.Operation{Method: "POST", Path: "/v1/revoke", ID: "revokeSecret"}, []int{200, 400, 413, 415, 503}},
		{openapi.Operation{Method: "POST", Path: "/v1/secret-scanning/github", ID: "reportLeakedSecrets"}, []int{200, 400, 401, 413, 503}},
		{openapi.Operation{Method: "GET", Path: "/v1/state", ID: "getStateAt"}, []int{200, 400, 401, 403, 503}},
		{openapi.Operation{Method: "GET", Path: "/v1/tokens", ID: "listTokens"}, []int{200, 400, 401, 403, 503}},
		{openapi.Operation{Method: "POST", Path: "/v1/tokens", ID: "issueToken"}, []int{201, 400, 401, 403, 409, 413, 415, 503}},
		{openapi.Operation{Method: "DELETE", Path: "/v1/tokens/{id}", ID: "revokeToken"}, []int{204, 400, 401, 404, 413, 415, 503}},
		{openapi.Operation{Method: "GET", Path: "/v1/tokens/{id}", ID: "getToken"}, []int{200, 400, 401, 404, 503}},
		{openapi.Operation{Method: "PATCH", Path: "/v1/tokens/{id}", ID: "updateToken"}, []int{200, 400, 401, 403, 404, 409, 413, 415, 503}},
		{openapi.Operation{Method: "GET", Path: "/v1/tokens/{id}/events", ID: "listTokenEvents"}, []int{200, 400, 401, 404, 503}},
		{openapi.Operation{Method: "POST", Path: "/v1/tokens/{id}/rotate", ID: "rotateToken"}, []int{201, 400, 401, 403, 404, 409, 413, 415, 503}},
		{openapi.Operation{Method: "GET", Path: "/v1/tokens/{id}/usage", ID: "getTokenUsage"}, []int{200, 400, 401, 404, 503}},
		{openapi.Operation{Method: "GET", Path: "/v1/webhooks", ID: "listWebhooks"}, []int{200, 400, 401, 503}},
		{openapi.Operation{Method: "POST", Path: "/v1/webhooks", ID: "createWebhook"}, []int{201, 400, 401, 403, 413, 415, 503}},
		{openapi.Operation{Method: "DELETE", Path: "/v1/webhooks/{id}", ID: "removeWebhook"}, []int{204, 400, 401, 404, 503}},
		{openapi.Operation{Method: "GET", Path: "/v1/webhooks/{id}/deliveries", ID: "listWebhookDeliveries"}, []int{200, 400, 401, 404, 503}},
	}
	var wantOps []openapi.Operation
	for _, w := range want {
		wantOps = append(wantOps, w.op)
	}
	if got := openapi.Operations(); !slices.Equal(got, wantOps) {
		t.Errorf("Operations() =\n%v\nwant (sorted by path, then method)\n%v", got, wantOps)
	}

	doc := load(t)
	for _, w := range want {
		t.Run(w.op.ID, func(t *testing.T) {
			t.Parallel()
			item := doc.Paths.Value(w.op.Path)
			if item == nil {
				t.Fatalf("path %s is not documented", w.op.Path)
			}
			op := item.GetOperation(w.op.Method)
			if op == nil {
				t.Fatalf("%s %s is not documented", w.op.Method, w.op.Path)
			}
			if op.OperationID != w.op.ID {
				t.Errorf("operationId = %q, want %q", op.OperationID, w.op.ID)
			}
			if op.Description == "" {
				t.Error("no description")
			}
			var got []int
			for code := range op.Responses.Map() {
				n, err := strconv.Atoi(code)
				if err != nil {
					t.Errorf("response %q: want only explicit status codes (no default, no ranges)", code)
					continue
				}
				got = append(got, n)
			}
			slices.Sort(got)
			if !slices.Equal(got, w.statuses) {
				t.Errorf("documented statuses %v, want %v", got, w.statuses)
			}
		})
	}
}

// TestEveryOperationIsComplete checks the rules every operation follows,
// including operations this file's tables do not know yet.
func TestEveryOperationIsComplete(t *testing.T) {
	t.Parallel()
	doc := load(t)
	errorSchema := doc.Components.Schemas["Error"]
	if errorSchema == nil {
		t.Fatal("components/schemas has no Error")
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			t.Run(method+" "+path, func(t *testing.T) {
				t.Parallel()
				if op.OperationID == "" {
					t.Fatal("no operationId")
				}
				open := op.Security != nil && len(*op.Security) == 0
				if open != unauthenticated[op.OperationID] {
					t.Errorf("security: [] is %v, want %v", open, unauthenticated[op.OperationID])
				}
				has2xx := false
				for code, resp := range op.Responses.Map() {
					if strings.HasPrefix(code, "2") {
						has2xx = true
					}
					h := resp.Value.Headers["X-Request-Id"]
					if h == nil || !h.Value.Required {
						t.Errorf("response %s does not declare the required X-Request-Id header", code)
					}
					if resp.Value.Description == nil || *resp.Value.Description == "" {
						t.Errorf("response %s has no description", code)
					}
					isError := code[0] == '4' || (code[0] == '5' && op.OperationID != "readyz")
					if isError && !refersTo(resp.Value.Content.Get("application/json"), errorSchema.Value) {
						t.Errorf("error response %s does not answer the Error schema as application/json", code)
					}
				}
				if !has2xx {
					t.Error("no 2xx response")
				}
				if !open && op.Responses.Value("401") == nil {
					t.Error("an authenticated operation without a 401 response")
				}
				// Authentication itself fails closed with 503 when the
				// validator is stale, so every authenticated operation
				// can answer it.
				if !open && op.Responses.Value("503") == nil {
					t.Error("an authenticated operation without a 503 response")
				}
				if r := op.Responses.Value("503"); r != nil && op.OperationID != "readyz" {
					if h := r.Value.Headers["Retry-After"]; h == nil || !h.Value.Required {
						t.Error("response 503 does not declare the required Retry-After header")
					}
				}
				if r := op.Responses.Value("401"); r != nil {
					if h := r.Value.Headers["WWW-Authenticate"]; h == nil || !h.Value.Required {
						t.Error("response 401 does not declare the required WWW-Authenticate header")
					}
				}
			})
		}
	}
}

// refersTo reports whether mt's schema is want, or an allOf that includes
// it (an error response narrowing the codes).
func refersTo(mt *openapi3.MediaType, want *openapi3.Schema) bool {
	if mt == nil || mt.Schema == nil {
		return false
	}
	if mt.Schema.Value == want {
		return true
	}
	for _, s := range mt.Schema.Value.AllOf {
		if s.Value == want {
			return true
		}
	}
	return false
}

// wireTypes maps every sdk type that travels as JSON to the component
// schema that describes it, and says whether it is a request body.
var wireTypes = []struct {
	value   any
	schema  string
	request bool
}{
	{sdk.Token{}, "Token", false},
	{sdk.IssueRequest{}, "IssueRequest", true},
	{sdk.WebhookRequest{}, "WebhookRequest", true},
	{sdk.SecretScanningReport{}, "SecretScanningReport", true},
	{sdk.SecretScanningLabel{}, "SecretScanningLabel", false},
	{sdk.Webhook{}, "Webhook", false},
	{sdk.WebhookList{}, "WebhookList", false},
	{sdk.WebhookDelivery{}, "WebhookDelivery", false},
	{sdk.WebhookDeliveries{}, "WebhookDeliveries", false},
	{sdk.IssuedToken{}, "IssuedToken", false},
	{sdk.RotatedToken{}, "RotatedToken", false},
	{sdk.SetExpiryRequest{}, "SetExpiryRequest", true},
	{sdk.SetAllowedCIDRsRequest{}, "SetAllowedCIDRsRequest", true},
	{sdk.UsedAddr{}, "UsedAddr", false},
	{sdk.UsageSeries{}, "UsageSeries", false},
	{sdk.UsageBucket{}, "UsageBucket", false},
	{sdk.RevokeRequest{}, "RevokeRequest", true},
	{sdk.RotateRequest{}, "RotateRequest", true},
	{sdk.TokenPage{}, "TokenPage", false},
	{sdk.Event{}, "Event", false},
	{sdk.EventList{}, "EventList", false},
	{sdk.OwnerRevokeRequest{}, "OwnerRevokeRequest", true},
	{sdk.OwnerRevocation{}, "OwnerRevocation", false},
	{sdk.StateAt{}, "StateAt", false},
	{sdk.SecretRequest{}, "SecretRequest", true},
	{sdk.Introspection{}, "Introspection", false},
	{sdk.ErrorBody{}, "Error", false},
	{sdk.ErrorDetail{}, "ErrorDetail", false},
}

// ignoresUnknown are the request schemas whose unknown members the server
// ignores rather than refuses: the bodies of RFC 7009 and RFC 7662, whose
// clients send parameters of their own (RFC 6749 §3.2).
var ignoresUnknown = map[string]bool{"SecretRequest": true, "SecretScanningReport": true}

// jsonField is what encoding/json makes of one struct field.
type jsonField struct {
	omitempty bool
	typ       reflect.Type
}

// jsonFields lists the JSON members of t as encoding/json writes them:
// fields of embedded structs without a tag are promoted, "-" and unexported
// fields are left out.
func jsonFields(t reflect.Type) map[string]jsonField {
	out := map[string]jsonField{}
	for f := range t.Fields() {
		tag, hasTag := f.Tag.Lookup("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && !hasTag && f.Type.Kind() == reflect.Struct {
			maps.Copy(out, jsonFields(f.Type))
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = jsonField{omitempty: slices.Contains(strings.Split(opts, ","), "omitempty"), typ: f.Type}
	}
	return out
}

// flatten gathers the properties and required names of s and of every
// schema it includes with allOf.
func flatten(s *openapi3.Schema, props map[string]*openapi3.SchemaRef, required map[string]bool) {
	for _, sub := range s.AllOf {
		flatten(sub.Value, props, required)
	}
	maps.Copy(props, s.Properties)
	for _, r := range s.Required {
		required[r] = true
	}
}

// TestSchemasMatchSDKTypes keeps the document and package sdk in step: a
// field added to, renamed in or dropped from an sdk wire type without the
// same change to its schema fails here, and so does a change of whether it
// may be absent or null.
func TestSchemasMatchSDKTypes(t *testing.T) {
	t.Parallel()
	doc := load(t)
	timeType, timePtr := reflect.TypeFor[time.Time](), reflect.TypeFor[*time.Time]()
	for _, wt := range wireTypes {
		typ := reflect.TypeOf(wt.value)
		t.Run(typ.Name(), func(t *testing.T) {
			t.Parallel()
			ref := doc.Components.Schemas[wt.schema]
			if ref == nil {
				t.Fatalf("components/schemas has no %s", wt.schema)
			}
			props, required := map[string]*openapi3.SchemaRef{}, map[string]bool{}
			flatten(ref.Value, props, required)
			fields := jsonFields(typ)

			for _, name := range slices.Sorted(maps.Keys(fields)) {
				if props[name] == nil {
					t.Errorf("sdk.%s has the JSON member %q; schema %s does not document it", typ.Name(), name, wt.schema)
				}
			}
			for _, name := range slices.Sorted(maps.Keys(props)) {
				if _, ok := fields[name]; !ok {
					t.Errorf("schema %s documents %q; sdk.%s has no such JSON member", wt.schema, name, typ.Name())
				}
			}
			for name, f := range fields {
				p := props[name]
				if p == nil {
					continue
				}
				if required[name] == f.omitempty {
					t.Errorf("%q: required = %v, want %v (the field is omitempty = %v)", name, required[name], !f.omitempty, f.omitempty)
				}
				wantNullable := f.typ.Kind() == reflect.Pointer && !f.omitempty
				if p.Value.Nullable != wantNullable {
					t.Errorf("%q: nullable = %v, want %v (a pointer without omitempty is written as null)", name, p.Value.Nullable, wantNullable)
				}
				if (f.typ == timeType || f.typ == timePtr) && p.Value.Format != "date-time" {
					t.Errorf("%q: format = %q, want date-time", name, p.Value.Format)
				}
			}
			for name := range required {
				if props[name] == nil {
					t.Errorf("required %q is not a property", name)
				}
			}
			if wt.request {
				ap := ref.Value.AdditionalProperties.Has
				switch {
				case ignoresUnknown[wt.schema] && (ap == nil || !*ap):
					t.Errorf("request schema %s must set additionalProperties: true (the server ignores unknown fields there)", wt.schema)
				case !ignoresUnknown[wt.schema] && (ap == nil || *ap):
					t.Errorf("request schema %s must set additionalProperties: false (the server refuses unknown fields)", wt.schema)
				}
			}
		})
	}
}

// TestEverySDKWireTypeIsMapped finds, in package sdk's source, every struct
// type with JSON-tagged or embedded fields, and requires it to be listed in
// wireTypes, so a new wire type cannot escape TestSchemasMatchSDKTypes.
func TestEverySDKWireTypeIsMapped(t *testing.T) {
	t.Parallel()
	mapped := map[string]bool{}
	for _, wt := range wireTypes {
		mapped[reflect.TypeOf(wt.value).Name()] = true
	}
	files, err := filepath.Glob(filepath.Join("..", "..", "sdk", "*.go"))
	if err != nil {
		t.Fatalf("list sdk sources: %v", err)
	}
	found := 0
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatalf("parse %s: %v", name, err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			spec, ok := n.(*ast.TypeSpec)
			if !ok || !spec.Name.IsExported() {
				return true
			}
			st, ok := spec.Type.(*ast.StructType)
			if !ok || !isWireStruct(st) {
				return true
			}
			found++
			if !mapped[spec.Name.Name] {
				t.Errorf("sdk.%s is a JSON wire type without a component schema in wireTypes", spec.Name.Name)
			}
			return true
		})
	}
	if found < len(wireTypes) {
		t.Errorf("found %d wire types in %v, fewer than the %d mapped: the source scan is broken", found, files, len(wireTypes))
	}
}

func isWireStruct(st *ast.StructType) bool {
	for _, f := range st.Fields.List {
		if len(f.Names) == 0 {
			return true
		}
		if f.Tag != nil && strings.Contains(f.Tag.Value, `json:"`) {
			return true
		}
	}
	return false
}

// TestErrorCodesMatchSDK requires the document's error codes to be exactly
// the sdk.Code constants.
func TestErrorCodesMatchSDK(t *testing.T) {
	t.Parallel()
	doc := load(t)
	want := []string{
		sdk.CodeInvalidRequest, sdk.CodePolicyViolation, sdk.CodeUnauthorized, sdk.CodeInvalidToken,
		sdk.CodeForbidden, sdk.CodeInsufficientScope, sdk.CodeScopeRequired, sdk.CodeIPNotAllowed, sdk.CodeOwnerBlocked, sdk.CodeLifetimeExceedsCaller, sdk.CodeNotFound,
		sdk.CodeMethodNotAllowed, sdk.CodeConflict, sdk.CodePayloadTooLarge, sdk.CodeUnsupportedMediaType,
		sdk.CodeUnavailable, sdk.CodeInternal,
	}
	var got []string
	for _, v := range doc.Components.Schemas["ErrorDetail"].Value.Properties["code"].Value.Enum {
		got = append(got, v.(string))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("error code enum %v, want the sdk constants %v", got, want)
	}
}

// TestSchemasAcceptWhatTheServerWrites validates values encoded from sdk
// types against their schemas, and values the schemas must refuse, so the
// constraints (formats, enums, nullability, the exact inactive
// introspection) are proven to bite.
func TestSchemasAcceptWhatTheServerWrites(t *testing.T) {
	t.Parallel()
	doc := load(t)
	tests := []struct {
		name   string
		schema string
		value  any
		valid  bool
	}{
		{"an active api token", "Token", map[string]any{
			"id": "01JQ3Z8V4N6Y2K5T7W9X0A1B2C", "owner": "o", "name": "", "scopes": []any{}, "kind": "api",
			"status": "active", "created_at": "2026-11-02T09:30:00Z", "expires_at": nil, "revoked_at": nil,
			"revoked_reason": nil, "owner_revoked": false, "last_used_at": nil, "use_count": 0,
		}, true},
		{"a token with null scopes", "Token", map[string]any{
			"id": "01JQ3Z8V4N6Y2K5T7W9X0A1B2C", "owner": "o", "name": "", "scopes": nil, "kind": "api",
			"status": "active", "created_at": "2026-11-02T09:30:00Z", "expires_at": nil, "revoked_at": nil,
			"revoked_reason": nil, "owner_revoked": false, "last_used_at": nil, "use_count": 0,
		}, false},
		{"a token with an unknown status", "Token", map[string]any{
			"id": "01JQ3Z8V4N6Y2K5T7W9X0A1B2C", "owner": "o", "name": "", "scopes": []any{}, "kind": "api",
			"status": "paused", "created_at": "2026-11-02T09:30:00Z", "expires_at": nil, "revoked_at": nil,
			"revoked_reason": nil, "owner_revoked": false, "last_used_at": nil, "use_count": 0,
		}, false},
		{"an inactive introspection", "Introspection", map[string]any{"active": false}, true},
		{"an inactive introspection that tells more", "Introspection", map[string]any{"active": false, "sub": "o"}, false},
		{"an active introspection", "Introspection", map[string]any{
			"active": true, "sub": "o", "scope": "a b", "token_type": "api", "iat": 1, "jti": "01JQ3Z8V4N6Y2K5T7W9X0A1B2C",
		}, true},
		{"an active introspection without its subject", "Introspection", map[string]any{
			"active": true, "token_type": "api", "iat": 1, "jti": "01JQ3Z8V4N6Y2K5T7W9X0A1B2C",
		}, false},
		{"a duration string", "Duration", "720h", true},
		{"a duration in seconds", "Duration", 3600, true},
		{"a duration as a boolean", "Duration", true, false},
		{"an expiry request clearing the expiry", "SetExpiryRequest", map[string]any{"expires_at": nil}, true},
		{"an expiry request without expires_at", "SetExpiryRequest", map[string]any{}, false},
		{"an expiry request that is not a time", "SetExpiryRequest", map[string]any{"expires_at": "tomorrow"}, false},
		{"an issue request with an unknown field", "IssueRequest", map[string]any{"name": "n", "colour": "red"}, false},
		{"an error with an unknown code", "Error", map[string]any{"error": map[string]any{"code": "oops", "message": "m"}}, false},
		{"an empty object", "Empty", map[string]any{}, true},
		{"a non-empty object for Empty", "Empty", map[string]any{"ok": true}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := doc.Components.Schemas[tc.schema].Value.VisitJSON(tc.value, openapi3.EnableFormatValidation())
			if tc.valid && err != nil {
				t.Errorf("refused: %v", err)
			}
			if !tc.valid && err == nil {
				t.Error("accepted")
			}
		})
	}
}

// TestOwnerNameMatchesTheServer proves the OwnerName schema says what
// api.ValidateOwnerName enforces: on a table of samples through kin-openapi's
// own validation, and for every Unicode code point through the pattern.
func TestOwnerNameMatchesTheServer(t *testing.T) {
	t.Parallel()
	doc := load(t)
	ref := doc.Components.Schemas["OwnerName"]
	if ref == nil {
		t.Fatal("components/schemas has no OwnerName")
	}
	schema := ref.Value
	tests := []struct {
		name  string
		owner string
		// bytesOnly marks the one documented difference: more than 256
		// bytes in at most 256 characters, which the server refuses and
		// maxLength (counting characters) cannot.
		bytesOnly bool
	}{
		{"plain", "alice", false},
		{"every punctuation allowed", "a_b-c@d:e+f=g/h#i~j!k$l", false},
		{"a user id", "user:42", false},
		{"a team path", "team/payments", false},
		{"punctuation only", "_-@:+=/#~!$", false},
		{"Latin with a diacritic", "Zoë", false},
		{"Han", "東京", false},
		{"Greek", "δοκιμή", false},
		{"Arabic-Indic digits", "١٢٣", false},
		{"feminine ordinal (Lo in Latin-1)", "ª", false},
		{"micro sign (Ll in Latin-1)", "µ", false},
		{"title case letter", "ǅ", false},
		{"modifier letter", "ʰ", false},
		{"256 ASCII bytes", strings.Repeat("a", 256), false},
		{"256 bytes of two-byte letters", strings.Repeat("é", 128), false},
		{"empty", "", false},
		{"257 ASCII bytes", strings.Repeat("a", 257), false},
		{"258 bytes in 129 characters", strings.Repeat("é", 129), true},
		{"a dot", "a.b", false},
		{"a space", "a b", false},
		{"a no-break space", "a\u00a0b", false},
		{"a star", "team*", false},
		{"a greater-than sign", "a>b", false},
		{"a tab", "a\tb", false},
		{"DEL", "a\x7f", false},
		{"a percent sign", "a%2Fb", false},
		{"a quote", `a"b`, false},
		{"a backslash", `a\b`, false},
		{"superscript two (No)", "x²", false},
		{"vulgar fraction (No)", "½", false},
		{"Roman numeral (Nl)", "Ⅻ", false},
		{"combining accent (Mn)", "e\u0301", false},
		{"zero-width space (Cf)", "a\u200bb", false},
		{"emoji", "🙂", false},
		{"invalid UTF-8", "a\xffb", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			server := api.ValidateOwnerName(tc.owner) == nil
			document := schema.VisitJSON(tc.owner) == nil
			switch {
			case tc.bytesOnly:
				if server || !document {
					t.Errorf("server accepts = %v, document accepts = %v; want only the document to accept", server, document)
				}
			case server != document:
				t.Errorf("server accepts = %v, document accepts = %v", server, document)
			}
		})
	}

	t.Run("every code point", func(t *testing.T) {
		t.Parallel()
		// kin-openapi compiles a pattern with Go's regexp after rewriting
		// \uXXXX escapes only; with none, this is the very same regexp.
		if strings.Contains(schema.Pattern, `\u`) {
			t.Fatalf("pattern %q has \\u escapes; compile it as kin-openapi does", schema.Pattern)
		}
		re := regexp.MustCompile(schema.Pattern)
		mismatches := 0
		for r := rune(0); r <= unicode.MaxRune && mismatches < 10; r++ {
			if utf16.IsSurrogate(r) {
				continue
			}
			s := string(r)
			if server, document := api.ValidateOwnerName(s) == nil, re.MatchString(s); server != document {
				t.Errorf("%U %q: server accepts = %v, pattern accepts = %v", r, s, server, document)
				mismatches++
			}
		}
	})

	wantRef := "#/components/schemas/OwnerName"
	if p := doc.Components.Parameters["Owner"]; p == nil || p.Value.Schema.Ref != wantRef {
		t.Errorf("the owner path parameter does not use %s", wantRef)
	}
	list := doc.Paths.Value("/v1/tokens").Get.Parameters.GetByInAndName("query", "owner")
	if list == nil || list.Schema.Ref != wantRef {
		t.Errorf("the owner filter of listTokens does not use %s", wantRef)
	}
	issue := doc.Components.Schemas["IssueRequest"].Value.Properties["owner"].Value
	// The same syntax, except that empty means the caller's owner.
	if want := strings.TrimSuffix(schema.Pattern, "+$") + "*$"; issue.Pattern != want {
		t.Errorf("IssueRequest.owner pattern = %q, want %q", issue.Pattern, want)
	}
	for _, owner := range []string{"", "team/payments"} {
		if err := issue.VisitJSON(owner); err != nil {
			t.Errorf("IssueRequest.owner refuses %q: %v", owner, err)
		}
	}
	if issue.VisitJSON("a.b") == nil {
		t.Error("IssueRequest.owner accepts an owner the server refuses")
	}
}

// TestMultiSegmentParameters checks the x-multi-segment extension is used
// only as the server can honour it: on a path parameter that is the last
// segment of its path, as a net/http.ServeMux "{name...}" wildcard.
func TestMultiSegmentParameters(t *testing.T) {
	t.Parallel()
	doc := load(t)
	found := 0
	for path, item := range doc.Paths.Map() {
		params := slices.Clone(item.Parameters)
		for _, op := range item.Operations() {
			params = append(params, op.Parameters...)
		}
		for _, p := range params {
			if v, ok := p.Value.Extensions["x-multi-segment"]; ok {
				found++
				if v != true {
					t.Errorf("%s: parameter %q: x-multi-segment = %v, want true", path, p.Value.Name, v)
				}
				if p.Value.In != "path" || !strings.HasSuffix(path, "/{"+p.Value.Name+"}") {
					t.Errorf("%s: parameter %q (in %s) is multi-segment but not the last segment of the path", path, p.Value.Name, p.Value.In)
				}
			}
		}
	}
	if found == 0 {
		t.Error("no parameter is marked x-multi-segment; /v1/auth/{path} should be")
	}
}
