package api

import (
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/tokenledger/tokenledger/domain"
)

// OwnerNameChars lists the characters an owner may have besides letters and
// digits (of any script).
const OwnerNameChars = "_-@:+=/#~!$"

// ValidateOwnerName checks an owner given to the API: 1 to
// domain.MaxOwnerLen bytes of valid UTF-8, made of letters, digits and the
// characters of OwnerNameChars. Dots, spaces, '*', '>' and control
// characters are refused: owners name people and systems ("user:42",
// "team/payments", "svc-billing"), and a syntax without them cannot be
// mistaken for a path, a subject or a wildcard anywhere an owner is
// written.
func ValidateOwnerName(owner string) error {
	if owner == "" {
		return badRequest("the owner must not be empty")
	}
	if len(owner) > domain.MaxOwnerLen {
		return badRequest(fmt.Sprintf("the owner is %d bytes long, at most %d are allowed", len(owner), domain.MaxOwnerLen))
	}
	if !utf8.ValidString(owner) {
		return badRequest("the owner is not valid UTF-8")
	}
	for i, r := range owner {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			continue
		}
		ok := false
		for _, c := range OwnerNameChars {
			ok = ok || c == r
		}
		if !ok {
			return badRequest(fmt.Sprintf("the owner has the character %q at byte %d; owners are letters, digits and %s", r, i, OwnerNameChars))
		}
	}
	return nil
}
