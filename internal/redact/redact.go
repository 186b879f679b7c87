// Package redact removes credentials from the connection strings that
// reach logs, start-up notes and errors: NATS and PostgreSQL URLs, lists of
// them, and PostgreSQL key=value DSNs. It is a leaf package, the one place
// that knows where a connection string keeps its secrets.
package redact

import (
	"cmp"
	"errors"
	"net/url"
	"slices"
	"strings"
)

// Mask replaces every credential.
const Mask = "xxxxx"

// unparsable stands for a URL that does not parse: a parser's error quotes
// the URL, so nothing of it is shown.
const (
	unparsableURL = "(unparsable url)"
	unparsableDSN = "(unparsable dsn)"
)

// URL returns s without its credentials. s is a URL, a comma-separated
// list of URLs (a NATS cluster), host:port forms without a scheme, or a
// key=value DSN (host=db password='a b'). What goes:
//
//   - the password of user:password@ (the user stays);
//   - a user without a password (nats://TOKEN@host), except in a
//     postgres:// URL, where it is only the user name;
//   - the value of every query parameter or DSN keyword that names a
//     credential: password, sslpassword, passwd, pwd, token, secret, jwt,
//     nkey, ...;
//   - a URL or DSN that does not parse, whole.
//
// The fragment of a URL is dropped.
func URL(s string) string {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return ""
	case isDSN(s):
		return dsn(s)
	}
	parts := strings.Split(s, ",")
	for i, p := range parts {
		parts[i] = oneURL(strings.TrimSpace(p))
	}
	return strings.Join(parts, ",")
}

// Credentials lists the credentials URL would remove from s, each in the
// forms it may take in a driver's error message (as written, and decoded),
// longest first. Text blanks them out of free text.
func Credentials(s string) []string {
	s = strings.TrimSpace(s)
	var out []string
	add := func(v ...string) {
		for _, x := range v {
			if x != "" && !slices.Contains(out, x) {
				out = append(out, x)
			}
		}
	}
	if isDSN(s) {
		pairs, ok := parseDSN(s)
		for _, p := range pairs {
			if sensitive(p.key) {
				add(p.value, p.raw)
			}
		}
		if !ok {
			// What follows the last good pair may be a credential in a form
			// the parser did not take; it is blanked out whole.
			add(strings.TrimSpace(s[dsnParsed(pairs):]))
		}
	} else {
		for _, p := range strings.Split(s, ",") {
			p = strings.TrimSpace(p)
			u, schemeless, err := parseURL(p)
			if err != nil {
				// A parser quotes what it cannot parse: blank it out whole,
				// and the credentials it seems to hold on their own.
				user, password, hasPassword := rawUserinfo(p)
				add(p, password)
				if scheme, _, found := strings.Cut(p, "://"); !hasPassword && !keepsUser(scheme, !found) {
					add(user)
				}
				continue
			}
			if u.User != nil {
				user, password, _ := rawUserinfo(p)
				if pw, ok := u.User.Password(); ok {
					add(pw, password)
				} else if !keepsUser(u.Scheme, schemeless) {
					add(u.User.Username(), user)
				}
			}
			for _, kv := range strings.Split(u.RawQuery, "&") {
				k, v, _ := strings.Cut(kv, "=")
				if sensitive(unescape(k)) {
					add(v, unescape(v))
				}
			}
		}
	}
	slices.SortStableFunc(out, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	return out
}

// Text returns text with every credential in credentials replaced by Mask,
// for an error message that may quote a connection string.
func Text(text string, credentials ...string) string {
	for _, c := range credentials {
		if c != "" {
			text = strings.ReplaceAll(text, c, Mask)
		}
	}
	return text
}

// isDSN reports whether s is a key=value DSN rather than URLs: it has no
// scheme and an '=' before any '/', '@' or ','.
func isDSN(s string) bool {
	if strings.Contains(s, "://") {
		return false
	}
	i := strings.IndexByte(s, '=')
	return i > 0 && !strings.ContainsAny(s[:i], "/@,")
}

// oneURL redacts one URL, or one host:port without a scheme.
func oneURL(s string) string {
	if s == "" {
		return ""
	}
	u, schemeless, err := parseURL(s)
	if err != nil {
		return unparsableURL
	}
	if u.User != nil {
		name := u.User.Username()
		switch _, hasPassword := u.User.Password(); {
		case hasPassword:
			u.User = url.UserPassword(name, Mask)
		case !keepsUser(u.Scheme, schemeless):
			u.User = url.User(Mask)
		}
	}
	u.RawQuery = query(u.RawQuery)
	u.Fragment, u.RawFragment = "", ""
	out := u.String()
	if schemeless {
		out = strings.TrimPrefix(out, "//")
	}
	return out
}

// parseURL parses s, taking a string without "://" as an authority
// (host:port, user@host:port), as NATS clients do.
func parseURL(s string) (u *url.URL, schemeless bool, err error) {
	schemeless = !strings.Contains(s, "://")
	raw := s
	if schemeless {
		raw = "//" + s
	}
	u, err = url.Parse(raw)
	if err == nil && (u.Host == "" || u.Opaque != "") {
		err = errNoHost
	}
	return u, schemeless, err
}

var errNoHost = errors.New("no host")

// rawUserinfo returns the user and password of a URL as written in it,
// escapes and all.
func rawUserinfo(s string) (user, password string, ok bool) {
	if _, rest, found := strings.Cut(s, "://"); found {
		s = rest
	}
	if i := strings.IndexAny(s, "/?#"); i >= 0 {
		s = s[:i]
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return "", "", false
	}
	user, password, ok = strings.Cut(s[:at], ":")
	return user, password, ok
}

// keepsUser reports whether a user without a password is a plain user
// name, shown, rather than a token: only in PostgreSQL URLs.
func keepsUser(scheme string, schemeless bool) bool {
	return !schemeless && (scheme == "postgres" || scheme == "postgresql")
}

// query masks the values of the parameters that name credentials, keeping
// the others as written.
func query(raw string) string {
	if raw == "" {
		return ""
	}
	pairs := strings.Split(raw, "&")
	for i, kv := range pairs {
		if k, _, ok := strings.Cut(kv, "="); ok && sensitive(unescape(k)) {
			pairs[i] = k + "=" + Mask
		}
	}
	return strings.Join(pairs, "&")
}

func unescape(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

// sensitive reports whether a query parameter or DSN keyword names a
// credential. Masking a harmless one (passfile) costs nothing.
func sensitive(key string) bool {
	k := strings.ToLower(strings.TrimSpace(key))
	for _, w := range []string{"pass", "pwd", "token", "secret", "jwt", "nkey", "credential", "apikey", "api_key"} {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// pair is one keyword=value of a DSN: value unquoted, raw as written.
type pair struct {
	key, value, raw string
	end             int // offset just past the pair in the DSN
}

// dsn redacts a key=value DSN, writing the pairs back separated by one
// space, with the credentials masked.
func dsn(s string) string {
	pairs, ok := parseDSN(s)
	if !ok {
		return unparsableDSN
	}
	out := make([]string, len(pairs))
	for i, p := range pairs {
		if sensitive(p.key) {
			out[i] = p.key + "=" + Mask
		} else {
			out[i] = p.key + "=" + p.raw
		}
	}
	return strings.Join(out, " ")
}

// parseDSN splits a DSN the way libpq does: keyword, optional spaces, '=',
// optional spaces, then a bare value up to the next space or a
// single-quoted one in which \' and \\ stand for ' and \. ok is false, with
// the pairs read so far, when s does not follow that form.
func parseDSN(s string) (pairs []pair, ok bool) {
	i := 0
	space := func() {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
	}
	for {
		space()
		if i == len(s) {
			return pairs, true
		}
		start := i
		for i < len(s) && s[i] != '=' && !isSpace(s[i]) {
			i++
		}
		key := s[start:i]
		space()
		if key == "" || i == len(s) || s[i] != '=' {
			return pairs, false
		}
		i++
		space()
		valueStart := i
		var value strings.Builder
		if i < len(s) && s[i] == '\'' {
			i++
			closed := false
			for i < len(s) {
				c := s[i]
				if c == '\\' && i+1 < len(s) {
					value.WriteByte(s[i+1])
					i += 2
					continue
				}
				i++
				if c == '\'' {
					closed = true
					break
				}
				value.WriteByte(c)
			}
			if !closed {
				return pairs, false
			}
		} else {
			for i < len(s) && !isSpace(s[i]) {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				value.WriteByte(s[i])
				i++
			}
		}
		pairs = append(pairs, pair{key: key, value: value.String(), raw: s[valueStart:i], end: i})
	}
}

// dsnParsed is the offset up to which pairs were read.
func dsnParsed(pairs []pair) int {
	if len(pairs) == 0 {
		return 0
	}
	return pairs[len(pairs)-1].end
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// Error wraps err so that its message has every credential in credentials
// replaced by Mask, while errors.Is and errors.As still see err. It
// returns err itself when there is nothing to blank out, and nil for nil.
func Error(err error, credentials ...string) error {
	if err == nil {
		return nil
	}
	for _, c := range credentials {
		if c != "" && strings.Contains(err.Error(), c) {
			return &redacted{err: err, msg: Text(err.Error(), credentials...)}
		}
	}
	return err
}

// redacted is an error whose message had credentials blanked out.
type redacted struct {
	err error
	msg string
}

func (e *redacted) Error() string { return e.msg }
func (e *redacted) Unwrap() error { return e.err }
