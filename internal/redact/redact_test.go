package redact_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jackalope-app/jackalope/internal/redact"
)

func TestURL(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		secrets []string // never in the output
	}{
		{name: "empty", in: "", want: ""},
		{name: "plain nats", in: "nats://nats:4222", want: "nats://nats:4222"},
		{name: "nats token", in: "nats://TOKEN@host:4222", want: "nats://xxxxx@host:4222", secrets: []string{"TOKEN"}},
		{name: "tls token", in: "tls://t0ken@nats.example.com:4222", want: "tls://xxxxx@nats.example.com:4222", secrets: []string{"t0ken"}},
		{name: "nats user and password", in: "nats://jackalope:s3cret@nats:4222", want: "nats://jackalope:xxxxx@nats:4222", secrets: []string{"s3cret"}},
		{name: "escaped password", in: "nats://u:p%40ss%3Aword@n:4222", want: "nats://u:xxxxx@n:4222", secrets: []string{"p%40ss", "p@ss", "word"}},
		{name: "empty user with password", in: "nats://:pw-only@n:4222", want: "nats://:xxxxx@n:4222", secrets: []string{"pw-only"}},
		{
			name: "cluster list", in: "nats://u:p1-secret@a:4222, nats://TOK2@b:4222,nats://c:4222",
			want: "nats://u:xxxxx@a:4222,nats://xxxxx@b:4222,nats://c:4222", secrets: []string{"p1-secret", "TOK2"},
		},
		{name: "host:port without scheme", in: "a:4222,b:4222", want: "a:4222,b:4222"},
		{name: "token without scheme", in: "TOKEN@a:4222", want: "xxxxx@a:4222", secrets: []string{"TOKEN"}},
		{name: "postgres user kept", in: "postgres://u@db/x", want: "postgres://u@db/x"},
		{
			name: "postgres password in query", in: "postgres://u@db/x?password=s3cr3t&sslmode=disable",
			want: "postgres://u@db/x?password=xxxxx&sslmode=disable", secrets: []string{"s3cr3t"},
		},
		{
			name: "postgres sslpassword and userinfo", in: "postgresql://jack:pw1-secret@db:5432/j?sslpassword=pw2-secret&sslmode=verify-full",
			want: "postgresql://jack:xxxxx@db:5432/j?sslpassword=xxxxx&sslmode=verify-full", secrets: []string{"pw1-secret", "pw2-secret"},
		},
		{name: "escaped query key", in: "postgres://db/x?pass%77ord=s3cr3t", want: "postgres://db/x?pass%77ord=xxxxx", secrets: []string{"s3cr3t"}},
		{name: "token parameter", in: "wss://n:443/?auth_token=abc-secret&x=1", want: "wss://n:443/?auth_token=xxxxx&x=1", secrets: []string{"abc-secret"}},
		{name: "fragment dropped", in: "nats://n:4222#frag-secret", want: "nats://n:4222", secrets: []string{"frag-secret"}},
		{name: "unparsable", in: "nats://u:p-secret@%zz", want: "(unparsable url)", secrets: []string{"p-secret"}},
		{name: "one of a list unparsable", in: "nats://a:4222,nats://u:p-secret@%zz", want: "nats://a:4222,(unparsable url)", secrets: []string{"p-secret"}},
		{name: "dsn", in: "host=db password=hunter2 dbname=j", want: "host=db password=xxxxx dbname=j", secrets: []string{"hunter2"}},
		{
			name: "dsn quoted with spaces", in: "host=db password='a b c-secret' user=jack",
			want: "host=db password=xxxxx user=jack", secrets: []string{"a b", "c-secret"},
		},
		{
			name: "dsn quoted with escapes", in: `password='it\'s s3cr3t' host='my db'`,
			want: "password=xxxxx host='my db'", secrets: []string{"s3cr3t", "it"},
		},
		{name: "dsn spaces around =", in: "host = db  password =  hunter2", want: "host=db password=xxxxx", secrets: []string{"hunter2"}},
		{name: "dsn sslpassword", in: "host=db sslpassword=key-secret sslmode=require", want: "host=db sslpassword=xxxxx sslmode=require", secrets: []string{"key-secret"}},
		{name: "dsn uppercase keyword", in: "host=db PASSWORD=hunter2", want: "host=db PASSWORD=xxxxx", secrets: []string{"hunter2"}},
		{name: "dsn unterminated quote", in: "host=db password='open-secret", want: "(unparsable dsn)", secrets: []string{"open-secret"}},
		{name: "dsn without =", in: "host=db password: colon-secret", want: "(unparsable dsn)", secrets: []string{"colon-secret"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := redact.URL(tt.in)
			if got != tt.want {
				t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
			}
			for _, s := range tt.secrets {
				if strings.Contains(got, s) {
					t.Errorf("URL(%q) = %q keeps %q", tt.in, got, s)
				}
			}
		})
	}
}

func TestCredentials(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{name: "none", in: "nats://a:4222,postgres://u@db/x"},
		{name: "nats token", in: "nats://TOKEN@host", want: []string{"TOKEN"}},
		{name: "escaped password", in: "postgres://u:p%40ss@db/x", want: []string{"p%40ss", "p@ss"}},
		{name: "query", in: "postgres://u@db/x?password=s3cr%33t", want: []string{"s3cr%33t", "s3cr3t"}},
		{name: "dsn quoted", in: `host=db password='a \'b'`, want: []string{`'a \'b'`, "a 'b"}},
		{name: "unparsable url", in: "nats://u:p-secret@%zz", want: []string{"nats://u:p-secret@%zz", "p-secret"}},
		{name: "unparsable url with a token", in: "nats://TOKEN@%zz", want: []string{"nats://TOKEN@%zz", "TOKEN"}},
		{name: "dsn unparsable rest", in: "host=db password: colon-secret", want: []string{"password: colon-secret"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, redact.Credentials(tt.in)); diff != "" {
				t.Errorf("Credentials(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestText(t *testing.T) {
	dsn := "host=db password='a b' user=u"
	msg := "cannot parse `host=db password='a b' user=u`: failed to connect as u with a b"
	got := redact.Text(msg, redact.Credentials(dsn)...)
	if strings.Contains(got, "a b") {
		t.Errorf("Text = %q keeps the password", got)
	}
	if want := "cannot parse `host=db password=xxxxx user=u`: failed to connect as u with xxxxx"; got != want {
		t.Errorf("Text = %q, want %q", got, want)
	}
}

func TestError(t *testing.T) {
	cause := errors.New(`parse "nats://u:p-secret@%zz": invalid URL escape`)
	err := redact.Error(cause, redact.Credentials("nats://u:p-secret@h:4222")...)
	if strings.Contains(err.Error(), "p-secret") {
		t.Errorf("Error() = %q keeps the password", err)
	}
	if !errors.Is(err, cause) {
		t.Errorf("errors.Is(%v, cause) = false; the cause must stay reachable", err)
	}
	if got := redact.Error(cause, "absent"); got.Error() != cause.Error() {
		t.Errorf("Error without a credential in the message = %q, want the cause's message %q", got, cause)
	}
	if redact.Error(nil, "x") != nil {
		t.Error("Error(nil) != nil")
	}
}
